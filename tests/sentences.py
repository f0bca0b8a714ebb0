"""A few real sentences (Jane Austen, *Pride and Prejudice*, 1813, public domain) for core tests
that must not depend on a trained tokenizer: a word-level vocabulary is built from them."""

SENTENCES = [
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife.",
    "However little known the feelings or views of such a man may be on his first entering a "
    "neighbourhood, this truth is so well fixed in the minds of the surrounding families, that he "
    "is considered the rightful property of some one or other of their daughters.",
    "My dear Mr. Bennet, said his lady to him one day, have you heard that Netherfield Park is let "
    "at last?",
    "Mr. Bennet replied that he had not.",
    "But it is, returned she; for Mrs. Long has just been here, and she told me all about it.",
]

SPECIALS = ["[PAD]", "[UNK]", "[SOS]", "[EOS]", "[MASK]", "[P]"]


def word_vocab() -> dict[str, int]:
    words = sorted({w for s in SENTENCES for w in s.lower().split()})
    return {tok: i for i, tok in enumerate(SPECIALS + words)}


def encode(sentence: str, vocab: dict[str, int]) -> list[int]:
    return [vocab["[SOS]"]] + [vocab[w] for w in sentence.lower().split()] + [vocab["[EOS]"]]
