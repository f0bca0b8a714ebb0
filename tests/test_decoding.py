"""Decoding: the key/value cache is exact, beam 1 is greedy, and the constraints hold.

The model is random (large initial weights so that every dependence shows) and in float64, so
"the same tokens" is not at the mercy of float32 near-ties.
"""

import math
import random

import pytest
import torch

import pmlm
from random_models import random_decoder_model
from pmlm.finetune.decoding import (CachedStepper, DecodeConfig, RecomputeStepper, banned_ngram_tokens,
                                    beam_search, generate, length_penalty)

IDS = {"pad": 0, "unk": 1, "sos": 2, "eos": 3, "mask": 4, "pseudo": 5}  # the order of pmlm.tokenizer
V = 40


@pytest.fixture(scope="module")
def model():
    return random_decoder_model(V)


@pytest.fixture(scope="module")
def sources():
    rng = random.Random(1)
    return [[rng.randrange(6, V) for _ in range(rng.randint(1, 12))] for _ in range(5)]  # ragged on purpose


def biased(model, token: int, value: float = 50.0):
    """A copy of ``model`` whose output bias makes ``token`` win every step."""
    import copy
    m = copy.deepcopy(model)
    with torch.no_grad():
        m.head.bias[token] += value
    return m


@pytest.mark.parametrize("beam", [1, 3])
def test_cached_decoding_gives_the_tokens_of_recomputing_the_prefix(model, sources, beam):
    kw = dict(beam_size=beam, max_length=12, min_length=2, no_repeat_ngram_size=3, length_penalty=1.0)
    cached = beam_search(model, sources, IDS, use_cache=True, **kw)
    recomputed = beam_search(model, sources, IDS, use_cache=False, **kw)
    assert cached == recomputed
    assert generate(model, sources, IDS, use_cache=True, **kw) == generate(model, sources, IDS, use_cache=False, **kw)
    assert any(len(c) > 2 for c in cached)  # the comparison covers several steps


def test_cached_log_probs_match_recomputed_at_every_step(model, sources):
    full = [[IDS["sos"]] + s + [IDS["eos"]] for s in sources]
    cached, ref = CachedStepper(model, full, IDS, 1), RecomputeStepper(model, full, IDS, 1)
    rng = random.Random(0)
    prev = None
    for _ in range(8):  # feed arbitrary (teacher-forced) tokens
        a, b = cached.logprobs(prev), ref.logprobs(prev)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)  # float32 log-softmax of float64 logits
        prev = torch.tensor([rng.randrange(6, V) for _ in sources])


def test_each_step_encodes_at_most_two_new_positions(model, sources, monkeypatch):
    calls = []
    real = model.encode_step

    def spy(input_ids, *args, **kwargs):
        calls.append(input_ids.shape[1])
        return real(input_ids, *args, **kwargs)

    monkeypatch.setattr(model, "encode_step", spy)
    monkeypatch.setattr(model, "encode", lambda *a, **k: pytest.fail("the cached path must not re-encode"))
    out = generate(model, sources, IDS, max_length=10, min_length=10)
    longest_source = max(len(s) for s in sources) + 2
    assert calls[0] == longest_source  # the source, once
    assert calls[1] == 1 and all(t == 2 for t in calls[2:])  # then [P]; then y_{t-1} and [P]
    assert len(calls) == 1 + max(len(o) for o in out)


@pytest.mark.parametrize("alpha", [0.0, 1.0, 2.0])
def test_beam_size_one_is_greedy(model, sources, alpha):
    kw = dict(max_length=12, length_penalty=alpha, min_length=1, no_repeat_ngram_size=2)
    assert beam_search(model, sources, IDS, beam_size=1, **kw) == generate(model, sources, IDS, beam_size=1, **kw)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("beam", [1, 3])
def test_no_repeat_ngram_blocking_holds(model, sources, n, beam):
    repeat = biased(model, 7)  # wants "7 7 7 ..."
    plain = generate(repeat, sources[:2], IDS, max_length=10, beam_size=beam)
    assert plain[0][:3] == [7, 7, 7]  # without blocking it repeats
    for y in generate(repeat, sources, IDS, max_length=15, beam_size=beam, no_repeat_ngram_size=n):
        grams = [tuple(y[i:i + n]) for i in range(len(y) - n + 1)]
        assert len(grams) == len(set(grams)), y


def test_banned_ngram_tokens():
    assert banned_ngram_tokens([1, 2, 1], 2) == [2]  # "1 2" seen, so 2 may not follow 1 again
    assert banned_ngram_tokens([1, 2, 3, 1, 2], 3) == [3]
    assert sorted(banned_ngram_tokens([4, 5], 1)) == [4, 5]
    assert banned_ngram_tokens([1, 2], 0) == []


@pytest.mark.parametrize("beam", [1, 3])
def test_min_length_and_max_length(model, sources, beam):
    stop = biased(model, IDS["eos"])  # wants to stop at once
    assert generate(stop, sources, IDS, beam_size=beam) == [[] for _ in sources]
    assert all(len(y) >= 4 for y in generate(stop, sources, IDS, beam_size=beam, min_length=4))
    go = biased(model, 9)  # never wants to stop: max_length ends it, without an error
    assert all(len(y) == 6 for y in generate(go, sources, IDS, beam_size=beam, max_length=6))


@pytest.mark.parametrize("beam", [1, 2])
def test_generation_stops_cleanly_at_the_models_last_position(model, beam):
    go = biased(model, 9)
    n_src = model.config.max_positions - 6  # [SOS] + source + [EOS] leaves 4 positions
    out = generate(go, [[10] * n_src, [11]], IDS, beam_size=beam, max_length=30)
    assert len(out[0]) == 4 and len(out[1]) == 30  # each source gets the room it has
    with pytest.raises(ValueError, match="max_positions"):
        generate(model, [[10] * (model.config.max_positions - 2)], IDS)


def test_length_penalty_and_config_errors():
    assert length_penalty(1, 1.0) == 1.0 and length_penalty(7, 1.0) == 2.0 and length_penalty(9, 0.0) == 1.0
    with pytest.raises(ValueError):
        DecodeConfig(max_length=0)
    with pytest.raises(ValueError):
        DecodeConfig(beam_size=0)


def test_special_tokens_are_never_generated(model, sources):
    for beam in (1, 3):
        for y in generate(model, sources, IDS, beam_size=beam, max_length=12):
            assert not {IDS["pad"], IDS["sos"], IDS["mask"], IDS["pseudo"], IDS["eos"]} & set(y)


def test_banned_ngram_tokens_with_ignored_words():
    dot = 9
    assert banned_ngram_tokens([1, dot, 1], 2) == [dot]  # "1 ." seen
    assert banned_ngram_tokens([1, dot, 1], 2, {dot}) == []  # "." is never banned
    assert banned_ngram_tokens([dot, 1, dot], 2, {dot}) == []  # after a "." nothing is banned
    assert banned_ngram_tokens([1, 2, dot, 1, 2], 3, {dot}) == []  # "1 2 ." holds the ignored "."
    assert banned_ngram_tokens([1, 2, 3, 1, 2], 3, {dot}) == [3]  # other n-grams stay blocked


# ------------------------------------------------- hand-built cases: a decoder whose probabilities are scripted
# tests/scripted_decoder.py stands in for the model: the probabilities of each step are written below, so
# that the output the specification implies can be worked out by hand.

A, B, C, D, DOT = 6, 7, 8, 9, 10
EOS = IDS["eos"]


def scripted_generate(monkeypatch, model, script, **kw):
    from scripted_decoder import scripted

    from pmlm.finetune import decoding
    monkeypatch.setattr(decoding, "CachedStepper", scripted(script, V))
    return generate(model, [[11, 12]], IDS, **kw)[0]


def wanted(tokens: list[int]):
    """Step t prefers ``tokens[t - 1]`` (0.6); the fallback D has 0.2, at step 6 0.35, so that the
    best way around one blocked token is unique: take D at step 6."""
    from scripted_decoder import by_position
    return by_position([{w: 0.6, D: 0.35 if t == 6 else 0.2} if w != D else {D: 0.6}
                        for t, w in enumerate(tokens, start=1)])


@pytest.mark.parametrize("beam", [1, 3])
def test_forbid_duplicate_ngrams_by_hand(monkeypatch, model, beam):
    kw = dict(beam_size=beam, max_length=10, length_penalty=0.0)
    run = lambda tokens, **more: scripted_generate(monkeypatch, model, wanted(tokens), **kw, **more)  # noqa: E731
    # trigrams: the 6th token would repeat "A B C", so the fallback D comes instead
    assert run([A, B, C, A, B, C, EOS]) == [A, B, C, A, B, C]
    assert run([A, B, C, A, B, C, EOS], no_repeat_ngram_size=3) == [A, B, C, A, B, D]
    assert run([A, B, C, A, B, C, EOS], no_repeat_ngram_size=4) == [A, B, C, A, B, C]  # "A B C A" is new
    # an ignored word is never banned: "A B ." may repeat
    assert run([A, B, DOT, A, B, DOT, EOS], no_repeat_ngram_size=3) == [A, B, DOT, A, B, D]
    assert run([A, B, DOT, A, B, DOT, EOS], no_repeat_ngram_size=3, forbid_ignore_ids=(DOT,)) == [A, B, DOT, A, B, DOT]
    # nor is anything after a prefix that holds one: "A . B" may repeat
    assert run([A, DOT, B, A, DOT, B, EOS], no_repeat_ngram_size=3) == [A, DOT, B, A, DOT, D]
    assert run([A, DOT, B, A, DOT, B, EOS], no_repeat_ngram_size=3, forbid_ignore_ids=(DOT,)) == [A, DOT, B, A, DOT, B]
    # ... while the n-grams without it stay blocked
    assert run([A, B, C, A, B, C, EOS], no_repeat_ngram_size=3, forbid_ignore_ids=(DOT,)) == [A, B, C, A, B, D]


@pytest.mark.parametrize("beam", [1, 2])
def test_min_length_by_hand(monkeypatch, model, beam):
    """Every step prefers [EOS] (0.9); min_length m forbids it at steps 1..m (s2s-ft: ``t <= min_len``),
    so exactly m tokens come out: the next best, A."""
    from scripted_decoder import by_position
    stop = by_position([{EOS: 0.9, A: 0.06, B: 0.03}])
    for m in range(5):
        assert scripted_generate(monkeypatch, model, stop, beam_size=beam, min_length=m) == [A] * m


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0, 2.0, 3.0])
def test_length_penalty_by_hand(monkeypatch, model, alpha):
    """Two finished hypotheses: [] (EOS at step 1, p = 0.5) and [A] (A 0.45, then EOS 0.9). The
    search keeps the one of higher log p / ((5 + t) / 6) ** alpha, t counting [EOS] (s2s-ft's score)."""
    from scripted_decoder import scripted
    script = lambda prefix: {EOS: 0.5, A: 0.45} if not prefix else {EOS: 0.9, A: 0.05}  # noqa: E731
    short = math.log(0.5) / ((5 + 1) / 6) ** alpha
    long = math.log(0.45 * 0.9) / ((5 + 2) / 6) ** alpha
    expected = [] if short > long else [A]
    from pmlm.finetune import decoding
    monkeypatch.setattr(decoding, "CachedStepper", scripted(script, V))
    assert generate(model, [[11]], IDS, beam_size=2, length_penalty=alpha)[0] == expected
    assert (expected == [A]) == (alpha >= 2.0)  # the penalty changes the answer between alpha 1 and 2


@pytest.mark.parametrize("beam", [1, 3])
def test_batched_decoding_equals_one_source_at_a_time_in_input_order(model, beam, monkeypatch):
    rng = random.Random(3)
    many = [[rng.randrange(6, V) for _ in range(rng.randint(1, 14))] for _ in range(9)]
    kw = dict(beam_size=beam, max_length=10, min_length=2, no_repeat_ngram_size=2)
    alone = [generate(model, [s], IDS, batch_size=1, **kw)[0] for s in many]
    from pmlm.finetune import decoding
    seen, done = [], []
    run = decoding._greedy if beam == 1 else decoding._beam
    monkeypatch.setattr(decoding, "_greedy" if beam == 1 else "_beam",
                        lambda m, srcs, *a: seen.append([len(s) for s in srcs]) or run(m, srcs, *a))
    assert generate(model, many, IDS, batch_size=4, progress=done.append, **kw) == alone
    assert [len(b) for b in seen] == [4, 4, 1] and done == [4, 4, 1]
    lengths = [n for b in seen for n in b]
    assert lengths == sorted((len(s) for s in many), reverse=True)  # batches of the longest first
    assert len(set(map(tuple, alone))) > 1  # the sources get different outputs, so order shows
