"""Decoding: the key/value cache is exact, beam 1 is greedy, and the constraints hold.

The model is random (large initial weights so that every dependence shows) and in float64, so
"the same tokens" is not at the mercy of float32 near-ties.
"""

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
