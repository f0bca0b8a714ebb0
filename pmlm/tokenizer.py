"""The WordPiece tokenizer: trained on the training split, saved beside the checkpoint (section 4.1).

The paper uses BERT's uncased WordPiece vocabulary of 30,522 entries. We train one of the same kind
with Hugging Face ``tokenizers`` on the *training* split only (so validation text never shapes the
vocabulary), with BERT's normalisation (lowercase, accents stripped) and pre-tokenization
(whitespace and punctuation split). The default vocabulary is small (8,192) because the tiny
presets train on a few megabytes of text; the tokenizer keeps fewer entries when the text does not
support that many.

Special tokens, with fixed ids 0..5 in this order::

    [PAD] [UNK] [SOS] [EOS] [MASK] [P]

``[MASK]`` is the paper's conventional mask ``[M]`` and ``[P]`` its pseudo mask (section 3.2).
``tok.encode(text)`` adds ``[SOS] text [EOS]`` (and ``[SOS] a [EOS] b [EOS]`` with segment ids 0/1
for a pair), the input format of section 2.2; the pre-training data builds its examples from ids
without special tokens (:mod:`pmlm.data`).

Choices where the paper is silent: ``min_frequency=2`` (a word piece seen once is noise on a small
corpus); ``[UNK]`` is never masked (:func:`make_collator` lists it with the special ids). The
trainer of ``tokenizers`` is not deterministic: it numbers its pieces in an order that changes from
run to run, and where candidates tie on frequency near the end of the vocabulary it may even keep
different pieces (two trainings on the Austen training split at 8,192 entries differed in 3
pieces). We renumber the pieces canonically: special tokens 0..5, then word-initial pieces (single
characters first), then ``##`` continuation pieces (single characters first), each group sorted by
text, so that the same set of pieces always gets the same ids. For bit-identical reruns, reuse the
tokenizer of an earlier run (``pmlm.train --tokenizer``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from pmlm.collator import PMLMCollator

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[SOS]", "[EOS]", "[MASK]", "[P]"]
SPECIAL_KEYS = {"pad": "[PAD]", "unk": "[UNK]", "sos": "[SOS]", "eos": "[EOS]", "mask": "[MASK]",
                "pseudo": "[P]"}
TOKENIZER_FILE = "tokenizer.json"


def canonical_vocabulary(vocab: dict[str, int]) -> dict[str, int]:
    """Renumber a trained vocabulary deterministically: specials first, then pieces by kind and text.

    WordPiece encodes by greedy longest match, which depends on the set of pieces, not on their ids,
    so renumbering changes no segmentation.
    """
    rest = sorted(set(vocab) - set(SPECIAL_TOKENS),
                  key=lambda piece: (piece.startswith("##"), len(piece.removeprefix("##")) > 1, piece))
    return {piece: i for i, piece in enumerate(SPECIAL_TOKENS + rest)}


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8192, *, min_frequency: int = 2,
                    show_progress: bool = False) -> Tokenizer:
    """Train an uncased WordPiece tokenizer with the PMLM special tokens on ``texts``."""
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size={vocab_size} leaves no room beside the {len(SPECIAL_TOKENS)} "
                         "special tokens")
    seen = {"chars": 0}

    def counted(texts: Iterable[str]) -> Iterable[str]:
        for text in texts:
            if not isinstance(text, str):
                raise ValueError(f"tokenizer training texts must be strings, got {type(text).__name__}")
            seen["chars"] += len(text.strip())
            yield text

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True, clean_text=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=SPECIAL_TOKENS, show_progress=show_progress,
                                        continuing_subword_prefix="##")
    tok.train_from_iterator(counted(texts), trainer=trainer)
    if seen["chars"] == 0:
        raise ValueError("cannot train a tokenizer on empty text: every training text is blank")
    tok.model = models.WordPiece(canonical_vocabulary(tok.get_vocab()), unk_token="[UNK]",
                                 continuing_subword_prefix="##")
    ids = special_ids(tok)
    tok.post_processor = processors.TemplateProcessing(
        single="[SOS] $A [EOS]", pair="[SOS] $A [EOS] $B:1 [EOS]:1",
        special_tokens=[("[SOS]", ids["sos"]), ("[EOS]", ids["eos"])])
    return tok


# A BERT vocabulary (the published UniLMv2 models, pmlm.unilmv2): [CLS], [SEP] and [MASK] serve as
# [SOS], [EOS] and the pseudo mask, as s2s-ft feeds them
BERT_ROLES = {"sos": "[CLS]", "eos": "[SEP]", "pseudo": "[MASK]"}


def special_ids(tok: Tokenizer) -> dict[str, int]:
    """Ids of the special tokens: keys ``pad, unk, sos, eos, mask, pseudo``.

    A BERT vocabulary (no ``[SOS]``, a ``[CLS]``) maps the roles as s2s-ft does (:data:`BERT_ROLES`):
    its one ``[MASK]`` is then both ``[M]`` and ``[P]``, enough for fine-tuning and pseudo-mask
    decoding; pre-training, which needs the two apart, refuses it (:func:`pmlm.layout.check_ids`).
    """
    bert = tok.token_to_id("[SOS]") is None and tok.token_to_id("[CLS]") is not None
    out = {}
    for key, token in SPECIAL_KEYS.items():
        if bert and key in BERT_ROLES and not (key == "pseudo" and tok.token_to_id("[P]") is not None):
            token = BERT_ROLES[key]
        idx = tok.token_to_id(token)
        if idx is None:
            raise ValueError(f"the tokenizer has no {token} token; PMLM needs all of {SPECIAL_TOKENS} "
                             "(train one with pmlm.tokenizer.train_tokenizer)")
        out[key] = idx
    return out


def bert_tokenizer(vocab: str | Path, lowercase: bool = True, pseudo_mask: str | None = None) -> Tokenizer:
    """BERT's WordPiece from a ``vocab.txt`` (ids = line numbers), with ``[CLS] a [SEP]`` templates.

    ``pseudo_mask``: a piece of the vocabulary renamed ``[P]`` (its id kept), so that pre-training
    has a pseudo mask apart from ``[MASK]`` (:func:`bert_pretraining_tokenizer`).
    """
    path = Path(vocab)
    if not path.is_file():
        raise ValueError(f"no vocabulary at {path}: download the model's -vocab.txt")
    pieces = path.read_text(encoding="utf-8").rstrip("\n").split("\n")  # one piece a line, as BERT reads it
    if pseudo_mask is not None:
        if pseudo_mask not in pieces:
            raise ValueError(f"{path} has no piece {pseudo_mask!r} to serve as the pseudo mask [P]")
        pieces[pieces.index(pseudo_mask)] = "[P]"
    vocab_ids = {p: i for i, p in enumerate(pieces)}
    missing = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if t not in vocab_ids]
    if missing:
        raise ValueError(f"{path} lacks the BERT special tokens {missing}")
    tok = Tokenizer(models.WordPiece(vocab_ids, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (["[P]"] if pseudo_mask else []))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab_ids["[CLS]"]), ("[SEP]", vocab_ids["[SEP]"])])
    return tok




def bert_pretraining_tokenizer(vocab: str | Path) -> Tokenizer:
    """BERT's uncased ``vocab.txt`` (30,522 pieces, the paper's, section 4.1) for pre-training.

    BERT has one ``[MASK]``; PMLM needs a pseudo mask apart from it (section 3.2). Its first unused
    slot ``[unused0]`` (id 1) becomes ``[P]``: no text ever maps to it, and every other id stays
    BERT's, so the published checkpoints' embeddings line up with it.
    """
    return bert_tokenizer(vocab, lowercase=True, pseudo_mask="[unused0]")


def save_tokenizer(tok: Tokenizer, path: str | Path) -> Path:
    """Write ``tok`` to ``path`` atomically (a temporary file, then a rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tok.save(str(tmp))
    os.replace(tmp, path)
    return path


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load a tokenizer from a ``tokenizer.json`` or a run directory that holds one."""
    path = Path(path)
    if path.is_dir():
        path = path / TOKENIZER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer at {path}: expected a tokenizer.json written by "
                                "pmlm.train (or a run directory holding one)")
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as err:  # the Rust side raises a bare Exception for malformed JSON
        raise ValueError(f"{path} is not a readable tokenizer file (corrupt or truncated?): {err}") from None
    special_ids(tok)  # fails clearly when a special token is missing
    return tok


def make_collator(tok: Tokenizer, **kw) -> PMLMCollator:
    """A :class:`PMLMCollator` wired to the tokenizer's special ids; ``kw`` go to the collator."""
    ids = special_ids(tok)
    kw.setdefault("special_ids", [ids["pad"], ids["unk"], ids["sos"], ids["eos"]])
    return PMLMCollator(mask_id=ids["mask"], pseudo_id=ids["pseudo"], pad_id=ids["pad"],
                        vocab_size=tok.get_vocab_size(), eos_id=ids["eos"], **kw)
