"""Task 6, T5 relative position buckets (section 4.1)."""

import pytest
import torch

import oracles
import public_checks

pytestmark = pytest.mark.task6


@pytest.mark.points(4)
def test_public_checks():
    from pmlm.relpos import relative_position_bucket
    public_checks.relative_position_bucket(relative_position_bucket)


@pytest.mark.points(4)
@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (8, 16), (16, 64), (64, 256), (12, 40)])
def test_every_distance_against_the_reference(num_buckets, max_distance):
    from pmlm.relpos import relative_position_bucket
    d = torch.arange(-3 * max_distance, 3 * max_distance + 1)
    got = relative_position_bucket(d, num_buckets, max_distance).tolist()
    for dist, have in zip(d.tolist(), got):
        want = oracles.t5_bucket(dist, num_buckets, max_distance)
        assert have == want, (f"distance {dist} ({num_buckets} buckets, max distance {max_distance}): "
                              f"T5 bucket {want}, yours {have}")


@pytest.mark.points(2)
def test_reused_positions_share_the_bias():
    """A [P] and its original sit at the [M]'s position: distance 0 to it, the same bias to every key."""
    from pmlm.relpos import RelativePositionBias
    torch.manual_seed(0)
    bias = RelativePositionBias(32, 2, 128)
    pos = torch.tensor([[0, 1, 2, 3, 4, 5, 3, 4, 3, 4, 1, 1]])
    b = bias(pos)[0]  # (h, L, L)
    assert torch.equal(b[:, 6], b[:, 3]) and torch.equal(b[:, 10], b[:, 1]), "reused positions give the same bias row"
    assert not torch.equal(b[:, 0, 1], b[:, 1, 0]), "left and right neighbours get different buckets"
