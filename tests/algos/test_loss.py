"""policy_loss / sft_loss / entropy_bonus against hand-computed values (method §1.3, §1.4)."""

import math
import re

import pytest
import torch
from pydantic import ValidationError

from luffy.algos import (
    AGGREGATIONS,
    ON_POLICY_RATIOS,
    SHAPINGS,
    ClipConfig,
    LossConfig,
    ShapingParams,
    entropy_bonus,
    parse_shaping,
    policy_loss,
    sft_loss,
)

L = torch.log
T = torch.tensor
F = False


def batch():
    """Row 0: off-policy trace, p = [.1, .5, pad], Â = .8. Row 1: on-policy, p = [.2,.4,.3],
    p_old = [.4,.2,.3] so r = [.5, 2, 1], Â = -.5."""
    logp = L(T([[0.1, 0.5, 0.7], [0.2, 0.4, 0.3]])).requires_grad_(True)
    old = L(T([[0.2, 0.5, 0.9], [0.4, 0.2, 0.3]]))
    adv = T([0.8, -0.5])
    resp = T([[True, True, F], [True, True, True]])
    off = T([[True, True, F], [F, F, F]])
    return logp, old, adv, resp, off


# hand-computed token losses
OFF_LUFFY = -0.8 * (0.1 / 0.2) - 0.8 * (0.5 / 0.6)  # -1.0666667
ON_NOCLIP = 0.5 * 0.5 + 0.5 * 2.0 + 0.5 * 1.0  # 1.75
ON_CLIP = 0.5 * 0.8 + 0.5 * 2.0 + 0.5 * 1.0  # r=.5 clipped up to .8 (Â<0): 1.9


def test_registries_hold_the_documented_variants():
    assert SHAPINGS.names() == ["identity", "luffy", "pow", "sqrt"]
    assert AGGREGATIONS.names() == ["seq_mean_token_mean", "token_mean", "token_sum_norm"]
    assert ON_POLICY_RATIOS.names() == ["ratio", "shaped"]


def test_default_config_is_the_paper_run():
    c = LossConfig()
    assert (c.shaping.name, c.shaping.gamma, c.clip, c.aggregation, c.on_policy_ratio) == (
        "luffy", 0.1, None, "token_sum_norm", "ratio")


@pytest.mark.parametrize(
    "cfg, want",
    [
        (LossConfig(norm_length=4), (OFF_LUFFY + ON_NOCLIP) / 4),
        (LossConfig(norm_length=4, clip=ClipConfig()), (OFF_LUFFY + ON_CLIP) / 4),
        (LossConfig(shaping="identity", norm_length=4), (-0.8 * 0.6 + ON_NOCLIP) / 4),
        (LossConfig(shaping="sqrt", norm_length=4), (-0.8 * (math.sqrt(0.1) + math.sqrt(0.5)) + ON_NOCLIP) / 4),
        (LossConfig(shaping={"name": "pow", "k": 2.0}, norm_length=4), (-0.8 * (0.01 + 0.25) + ON_NOCLIP) / 4),
        (LossConfig(shaping={"name": "luffy", "gamma": 0.5}, norm_length=4),
         (-0.8 * (0.1 / 0.6 + 0.5 / 1.0) + ON_NOCLIP) / 4),
        (LossConfig(aggregation="token_mean"), (OFF_LUFFY + ON_NOCLIP) / 5),
        (LossConfig(aggregation="seq_mean_token_mean"), (OFF_LUFFY / 2 + ON_NOCLIP / 3) / 2),
        # norm_length None divides by the padded width T = 3
        (LossConfig(), (OFF_LUFFY + ON_NOCLIP) / 3),
        # on-policy shaping: r = f(p)/f(p_old) = [(2/3)/(.8)... ] with γ=.1
        (LossConfig(on_policy_ratio="shaped", norm_length=4),
         (OFF_LUFFY + 0.5 * ((0.2 / 0.3) / (0.4 / 0.5) + (0.4 / 0.5) / (0.2 / 0.3) + 1.0)) / 4),
    ],
    ids=["luffy", "luffy+clip", "identity", "sqrt", "pow2", "gamma.5", "token_mean", "seq_mean",
         "width_norm", "on_shaped"],
)
def test_policy_loss_hand_computed(cfg, want):
    loss, _ = policy_loss(*batch(), cfg)
    assert loss.item() == pytest.approx(want, rel=1e-5)


def test_metrics_hand_computed_and_detached():
    _, m = policy_loss(*batch(), LossConfig(norm_length=4, clip=ClipConfig()))
    assert m["clip_frac"].item() == pytest.approx(1 / 3)
    assert m["off_prob"].item() == pytest.approx(0.3)
    assert m["off_weight"].item() == pytest.approx((0.5 + 0.5 / 0.6) / 2)
    assert m["on_prob"].item() == pytest.approx(0.3)
    assert m["approx_kl"].item() == pytest.approx(math.log(2) / 5, rel=1e-5)
    assert m["on_pg_loss"].item() == pytest.approx(ON_CLIP / 3)
    assert m["off_pg_loss"].item() == pytest.approx(OFF_LUFFY / 2)
    assert (m["n_on_tokens"].item(), m["n_off_tokens"].item()) == (3, 2)
    assert all(not v.requires_grad and v.dim() == 0 for v in m.values())


def test_clip_upper_bound_is_max_of_eps_high_and_c():
    logp = L(T([[0.6]])).requires_grad_(True)
    old = L(T([[0.4]]))  # r = 1.5, Â = +1
    args = (logp, old, T([1.0]), T([[True]]), T([[F]]))
    loss, m = policy_loss(*args, LossConfig(norm_length=1, clip=ClipConfig(eps_high=0.2)))
    assert loss.item() == pytest.approx(-1.2) and m["clip_frac"].item() == 1.0
    loss, m = policy_loss(*args, LossConfig(norm_length=1, clip=ClipConfig(eps_high=0.2, upper_c=3.0)))
    assert loss.item() == pytest.approx(-1.5) and m["clip_frac"].item() == 0.0


@pytest.mark.parametrize("p", [0.001, 0.01, 0.1, 0.3, 0.9, 1.0])
@pytest.mark.parametrize("gamma", [0.05, 0.1, 0.5])
def test_shaped_gradient_is_minus_A_gamma_p_over_p_plus_gamma_squared(p, gamma):
    a = 1.7
    logp = L(T([[p, 0.5]], dtype=torch.float64)).requires_grad_(True)
    old = logp.detach().clone()
    loss, _ = policy_loss(logp, old, T([a], dtype=torch.float64), T([[True, True]]), T([[True, True]]),
                          LossConfig(shaping={"name": "luffy", "gamma": gamma}, norm_length=1))
    loss.backward()
    want = -a * gamma * p / (p + gamma) ** 2
    assert logp.grad[0, 0].item() == pytest.approx(want, rel=1e-9)


def test_shaping_weight_table_of_the_spec():
    # method §1.4 table: γp/(p+γ)² with γ = 0.1 — the max 0.25 is at p = γ
    for p, w in [(0.01, 0.0826), (0.1, 0.25), (0.5, 0.1389), (1.0, 0.0826)]:
        logp = L(T([[p]], dtype=torch.float64)).requires_grad_(True)
        loss, _ = policy_loss(logp, logp.detach(), T([-1.0], dtype=torch.float64), T([[True]]), T([[True]]),
                              LossConfig(norm_length=1))
        loss.backward()
        assert logp.grad.item() == pytest.approx(w, abs=5e-5)


@pytest.mark.parametrize("clip", [None, ClipConfig(eps_low=0.2, eps_high=0.28)])
def test_no_off_policy_tokens_equals_plain_dr_grpo(clip):
    g = torch.Generator().manual_seed(0)
    logp = (torch.rand(4, 6, generator=g) * -3).requires_grad_(True)
    old = logp.detach() + torch.randn(4, 6, generator=g) * 0.3
    adv = torch.randn(4, generator=g)
    mask = torch.rand(4, 6, generator=g) > 0.3
    loss, _ = policy_loss(logp, old, adv, mask, torch.zeros_like(mask), LossConfig(norm_length=10, clip=clip))
    r = torch.exp(logp.detach() - old)
    per_tok = -adv[:, None] * r
    if clip is not None:
        per_tok = torch.maximum(per_tok, -adv[:, None] * r.clamp(0.8, 1.28))
    want = (per_tok * mask).sum() / 10
    assert loss.item() == pytest.approx(want.item(), rel=1e-6)
    # and the shaping choice cannot matter without off-policy tokens
    for shaping in SHAPINGS:
        l2, _ = policy_loss(logp, old, adv, mask, torch.zeros_like(mask),
                            LossConfig(norm_length=10, clip=clip, shaping=shaping))
        assert l2.item() == pytest.approx(loss.item(), rel=1e-6)


def test_padding_is_excluded_exactly_even_with_nonfinite_values():
    logp, old, adv, resp, off = batch()
    base, _ = policy_loss(logp, old, adv, resp, off, LossConfig(norm_length=4, clip=ClipConfig()))
    base.backward()
    g0 = logp.grad.clone()
    bad = logp.detach().clone()
    bad[0, 2] = float("nan")
    old_bad = old.clone()
    old_bad[0, 2] = float("inf")
    bad.requires_grad_(True)
    loss, m = policy_loss(bad, old_bad, adv, resp, off, LossConfig(norm_length=4, clip=ClipConfig()))
    loss.backward()
    assert loss.item() == base.item()
    assert torch.isfinite(torch.stack(list(m.values()))).all()
    assert bad.grad[0, 2].item() == 0.0
    assert torch.equal(bad.grad[resp], g0[resp])


def test_off_policy_mask_outside_response_is_ignored():
    logp, old, adv, resp, off = batch()
    off2 = off.clone()
    off2[0, 2] = True  # padding position flagged off-policy: must not count
    a, _ = policy_loss(logp, old, adv, resp, off, LossConfig(norm_length=4))
    b, m = policy_loss(logp, old, adv, resp, off2, LossConfig(norm_length=4))
    assert a.item() == b.item() and m["n_off_tokens"].item() == 2


def test_token_level_advantages_accepted():
    logp, old, adv, resp, off = batch()
    a, _ = policy_loss(logp, old, adv, resp, off, LossConfig(norm_length=4))
    b, _ = policy_loss(logp, old, adv[:, None].expand(2, 3).clone(), resp, off, LossConfig(norm_length=4))
    assert a.item() == pytest.approx(b.item())


def test_sft_loss_and_entropy_bonus_hand_computed():
    logp = L(T([[0.5, 0.25, 0.9], [0.1, 1.0, 1.0]])).requires_grad_(True)
    mask = T([[True, True, F], [True, F, F]])
    want = -(math.log(0.5) + math.log(0.25) + math.log(0.1)) / 3
    assert sft_loss(logp, mask).item() == pytest.approx(want)
    assert sft_loss(logp, torch.zeros_like(mask)).item() == 0.0
    ent = T([[1.0, 2.0, 100.0], [3.0, 100.0, 100.0]])
    assert entropy_bonus(ent, mask).item() == pytest.approx(2.0)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda a: a.__setitem__(1, a[1][:, :2]), "old_logp"),
        (lambda a: a.__setitem__(2, T([1.0, 2.0, 3.0])), "advantages"),
        (lambda a: a.__setitem__(3, a[3].float()), "response_mask"),
        (lambda a: a.__setitem__(4, a[4].int()), "off_policy_mask"),
        (lambda a: a.__setitem__(4, a[4][:1]), "off_policy_mask"),
        (lambda a: a.__setitem__(0, a[0].detach()[0]), "logp"),
        (lambda a: a.__setitem__(0, T([[1, 2, 3], [1, 2, 3]])), "logp"),
        (lambda a: a.__setitem__(2, [0.8, -0.5]), "advantages"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(mutate, match):
    args = list(batch())
    mutate(args)
    with pytest.raises(ValueError, match=match):
        policy_loss(*args, LossConfig())


def test_bad_masks_for_sft_and_entropy():
    with pytest.raises(ValueError, match="mask"):
        sft_loss(torch.zeros(2, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="mask"):
        entropy_bonus(torch.zeros(2, 3), torch.ones(2, 2, dtype=torch.bool))


@pytest.mark.parametrize("gamma", [0.0, -0.1])
def test_gamma_must_be_positive(gamma):
    with pytest.raises(ValueError, match="shaping 'luffy': gamma: gamma must be > 0"):
        LossConfig(shaping={"name": "luffy", "gamma": gamma})


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(shaping="p_div_p_0.1"), r"unknown shaping 'p_div_p_0.1'.*identity, luffy, pow, sqrt"),
        (dict(aggregation="seq-mean"), r"unknown aggregation 'seq-mean'.*token_mean"),
        (dict(on_policy_ratio="logp"), r"unknown on-policy ratio 'logp'.*ratio, shaped"),
        (dict(clipp=0.2), "clipp"),
        (dict(norm_length=0), "norm_length"),
    ],
)
def test_config_rejects_unknown_names_and_keys(kw, match):
    with pytest.raises((ValueError, ValidationError), match=match):
        LossConfig(**kw)


def test_cfg_must_be_a_loss_config():
    with pytest.raises(ValueError, match="cfg"):
        policy_loss(*batch(), {"shaping": "luffy"})


# ----------------------------------------------------------------------------------------------
# per-shaping typed parameters


def _one_line(e: pytest.ExceptionInfo) -> str:
    """The message of the (single) validation error, as the config loader prints it."""
    errs = e.value.errors()
    assert len(errs) == 1
    return errs[0]["msg"]


def test_every_shaping_has_a_parameter_model_named_like_it():
    for name in SHAPINGS:
        model = SHAPINGS.params(name)
        assert model is not None and issubclass(model, ShapingParams)
        assert model().name == name  # every parameter has a default


@pytest.mark.parametrize("name", SHAPINGS.names())
def test_every_shaping_parses_from_a_bare_name_and_from_a_mapping(name):
    model = SHAPINGS.params(name)
    bare = LossConfig(shaping=name).shaping
    assert type(bare) is model and bare == model()
    assert LossConfig(shaping={"name": name}).shaping == bare
    # a mapping with every parameter given explicitly (at non-default values) is taken as written
    given = {k: 2 * v for k, v in bare.kwargs().items()}
    full = LossConfig(shaping={"name": name, **given}).shaping
    assert type(full) is model and full.kwargs() == given
    # the dump is the mapping form, and it round-trips
    dumped = LossConfig(shaping=full).model_dump(mode="json")["shaping"]
    assert dumped == {"name": name, **given}
    assert LossConfig(shaping=dumped).shaping == full


@pytest.mark.parametrize("name", [n for n in SHAPINGS.names() if "gamma" not in SHAPINGS.params(n).model_fields])
def test_a_shaping_without_gamma_rejects_gamma(name):
    with pytest.raises(ValidationError) as e:
        LossConfig(shaping={"name": name, "gamma": 0.5})
    msg = _one_line(e)
    assert msg.startswith(f"shaping {name!r} takes no parameter 'gamma'") and "\n" not in msg
    assert e.value.errors()[0]["loc"] == ("shaping",)


def test_gamma_outside_the_shaping_is_rejected_with_a_hint():
    # the flat form of the old config (shaping: identity, gamma: 0.5) must not be silently accepted
    for kw in (dict(shaping="identity", gamma=0.5), dict(gamma=0.1), dict(pow_k=2.0)):
        with pytest.raises(ValidationError) as e:
            LossConfig(**kw)
        key = next(k for k in kw if k != "shaping")
        assert _one_line(e).startswith(f"unknown key {key!r}: shaping parameters go inside 'shaping'")


@pytest.mark.parametrize(
    "shaping, match",
    [
        ({"name": "luffy", "pow_k": 2.0}, r"^shaping 'luffy' takes no parameter 'pow_k' \(its parameters: gamma\)$"),
        ({"name": "pow", "gamma": 0.1}, r"^shaping 'pow' takes no parameter 'gamma' \(its parameters: k\)$"),
        ({"name": "sqrt", "k": 2}, r"^shaping 'sqrt' takes no parameter 'k' \(it has no parameters\)$"),
        ({"name": "pow", "k": 0}, r"^shaping 'pow': k: Input should be greater than 0$"),
        ({"name": "luffy", "gamma": "big"}, r"^shaping 'luffy': gamma: Input should be a valid number"),
        ({"gamma": 0.2}, r"^shaping: a mapping needs a 'name' \(one of: identity, luffy, pow, sqrt\)"),
        ({"name": "cubic"}, r"^unknown shaping 'cubic'; expected one of: identity, luffy, pow, sqrt$"),
        (3, r"^shaping: expected a name or a mapping with a 'name', got int$"),
    ],
)
def test_bad_shaping_values_give_one_line_naming_the_key(shaping, match):
    with pytest.raises(ValidationError) as e:
        LossConfig(shaping=shaping)
    assert re.search(match, _one_line(e))


def test_parse_shaping_outside_a_config_raises_value_error():
    assert parse_shaping("luffy") == parse_shaping({"name": "luffy", "gamma": 0.1})
    with pytest.raises(ValueError, match="takes no parameter 'gamma'"):
        parse_shaping({"name": "identity", "gamma": 0.1})


@pytest.mark.parametrize(
    "shaping, f",
    [
        ("luffy", lambda p: p / (p + 0.1)),
        ({"name": "luffy", "gamma": 0.05}, lambda p: p / (p + 0.05)),
        ("identity", lambda p: p),
        ("sqrt", torch.sqrt),
        ("pow", lambda p: p**0.5),
        ({"name": "pow", "k": 3.0}, lambda p: p**3),
    ],
)
def test_configured_shaping_is_the_closed_form(shaping, f):
    p = torch.linspace(1e-4, 1.0, 101, dtype=torch.float64)
    assert torch.equal(LossConfig(shaping=shaping).shape(p), f(p))
