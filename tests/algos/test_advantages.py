"""group_advantages against hand-computed values (method §1.2)."""

import math

import pytest
import torch

from luffy.algos import ADV_SCALES, ADV_STATS, group_advantages

T = torch.tensor
F = False


def test_registries_hold_the_documented_modes():
    assert ADV_STATS.names() == ["group", "on_policy"]
    assert ADV_SCALES.names() == ["none", "std"]


def test_group_mean_only_mixed_group_spec_example():
    # 7 failed on-policy samples + a correct trace: Â_off = 0.875, Â_on = -0.125 (method §1.2)
    r = T([0.0] * 7 + [1.0])
    adv = group_advantages(r, T([3] * 8), T([F] * 7 + [True]))
    assert torch.allclose(adv, T([-0.125] * 7 + [0.875]))


def test_group_std_scale_two_groups_non_contiguous_ids():
    # group 10: rewards [1,0,0,1] mean .5, unbiased std sqrt(1/3); group 2: [1,1] std 0
    r = T([1.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    g = T([10, 2, 10, 10, 2, 10])
    off = T([F, F, F, True, F, F])
    adv = group_advantages(r, g, off, scale="std", eps=1e-6)
    s = math.sqrt(1 / 3)
    want = T([0.5 / (s + 1e-6), 0.0, -0.5 / (s + 1e-6), -0.5 / (s + 1e-6), 0.0, 0.5 / (s + 1e-6)])
    assert torch.allclose(adv, want, atol=1e-6)


def test_all_equal_group_gets_zero_advantage_in_every_mode():
    r = T([1.0, 1.0, 1.0, 1.0])
    g = T([0, 0, 0, 0])
    off = T([F, F, F, True])
    for stats in ADV_STATS:
        for scale in ADV_SCALES:
            adv = group_advantages(r, g, off, stats=stats, scale=scale)
            assert torch.equal(adv, torch.zeros(4)), (stats, scale)


def test_group_of_one_uses_mean_zero_std_one():
    adv = group_advantages(T([0.7]), T([5]), T([F]), scale="std")
    assert torch.allclose(adv, T([0.7 / (1 + 1e-6)]))


def test_on_policy_stats_apply_to_the_trace_too():
    # on-policy rewards [1,0,0] mean 1/3, unbiased std sqrt(1/3); trace reward 1
    r = T([1.0, 0.0, 0.0, 1.0])
    off = T([F, F, F, True])
    g = T([0, 0, 0, 0])
    adv = group_advantages(r, g, off, stats="on_policy")
    assert torch.allclose(adv, T([2 / 3, -1 / 3, -1 / 3, 2 / 3]))
    s = math.sqrt(1 / 3)
    adv = group_advantages(r, g, off, stats="on_policy", scale="std")
    assert torch.allclose(adv, T([2 / 3, -1 / 3, -1 / 3, 2 / 3]) / (s + 1e-6), atol=1e-6)
    # the mixed-group stats differ: mean 0.5
    assert torch.allclose(group_advantages(r, g, off), T([0.5, -0.5, -0.5, 0.5]))


def test_on_policy_stats_single_on_member_and_zero_std_replaced():
    off = T([F, True])
    adv = group_advantages(T([0.0, 1.0]), T([0, 0]), off, stats="on_policy", scale="std")
    assert torch.allclose(adv, T([0.0, 1.0 / (1 + 1e-6)]))  # one on-policy member: mean 0, std 1
    off = T([F, F, True])
    adv = group_advantages(T([0.0, 0.0, 1.0]), T([0, 0, 0]), off, stats="on_policy", scale="std")
    assert torch.allclose(adv, T([0.0, 0.0, 1.0 / (1 + 1e-6)]))  # std 0 replaced by 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(rewards=T([[1.0]]), group_ids=T([0]), off_policy=T([F])), "rewards"),
        (dict(rewards=T([1, 0]), group_ids=T([0, 0]), off_policy=T([F, F])), "rewards"),
        (dict(rewards=T([1.0, 0.0]), group_ids=T([0.0, 0.0]), off_policy=T([F, F])), "group_ids"),
        (dict(rewards=T([1.0, 0.0]), group_ids=T([0]), off_policy=T([F, F])), "group_ids"),
        (dict(rewards=T([1.0, 0.0]), group_ids=T([0, 0]), off_policy=T([0, 1])), "off_policy"),
        (dict(rewards=T([1.0, float("nan")]), group_ids=T([0, 0]), off_policy=T([F, F])), "rewards"),
    ],
)
def test_bad_input_names_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        group_advantages(**kwargs)


def test_unknown_modes_list_valid_names():
    args = (T([1.0]), T([0]), T([F]))
    with pytest.raises(ValueError, match=r"unknown advantage stats 'grpo'.*group, on_policy"):
        group_advantages(*args, stats="grpo")
    with pytest.raises(ValueError, match=r"unknown advantage scale 'mean'.*none, std"):
        group_advantages(*args, scale="mean")
