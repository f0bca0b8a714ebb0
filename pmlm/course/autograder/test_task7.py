"""Task 7, one cached decoding step (section 3.4): cached decoding equals recomputation."""

import pytest
import torch

import oracles
import public_checks
from helpers import tiny_model

pytestmark = pytest.mark.task7

IDS = {"pad": 0, "sos": 3, "eos": 4, "mask": 1, "pseudo": 2, "unk": 5}


@pytest.mark.points(6)
def test_public_checks():
    from pmlm.finetune.decoding import cached_step_inputs
    public_checks.cached_step_inputs(cached_step_inputs)


@pytest.mark.points(8)
@pytest.mark.parametrize("seed", range(3))
def test_cached_steps_equal_recomputation(seed):
    from pmlm.finetune.decoding import CachedStepper
    model = tiny_model(seed)
    g = torch.Generator().manual_seed(seed)
    sources = [torch.randint(6, 40, (n,), generator=g).tolist() for n in (5, 9, 3)]
    full = [[IDS["sos"]] + s + [IDS["eos"]] for s in sources]
    stepper = CachedStepper(model, full, IDS, 1)
    prefixes = [[] for _ in sources]
    prev = None
    with torch.no_grad():
        for t in range(1, 7):
            got = stepper.logprobs(prev)
            for r, src in enumerate(sources):
                want = oracles.recompute_logprobs(model, src, prefixes[r], IDS)
                assert torch.allclose(got[r], want, atol=1e-4), \
                    f"step {t}, source {r}: the cached step's log-probabilities differ from re-encoding the prefix"
            prev = torch.randint(6, 40, (len(sources),), generator=g)
            for r in range(len(sources)):
                prefixes[r].append(int(prev[r]))


@pytest.mark.points(6)
@pytest.mark.parametrize("beam", [1, 3])
def test_decoding_with_and_without_cache(beam):
    from pmlm.finetune.decoding import generate
    model = tiny_model(7)
    sources = [[10, 11, 12, 13], [20, 21], [30, 31, 32, 33, 34, 35]]
    with torch.no_grad():
        cached = generate(model, sources, IDS, beam_size=beam, max_length=8)
        plain = generate(model, sources, IDS, beam_size=beam, max_length=8, use_cache=False)
    assert cached == plain, f"beam {beam}: decoding with the cache gives {cached}, recomputation {plain}"
