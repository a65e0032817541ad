"""The objective of an optimizer step does not depend on how its mini-batch is split.

* micro-batch sizes 1, 2 and "all" give the same gradient (to 1e-6), for every aggregation, for the
  RL-w/-SFT-loss objective and for SFT;
* one worker and two workers (micro-batches dealt round-robin, gradients summed, as the FSDP2
  workers do with ``set_gradient_divide_factor(1)``) give the same gradient;
* with ``norm_ranks = D`` and ``entropy_coef = c·K`` the gradient equals a hand-built copy of the
  reference's per-step objective: D ranks of K micro-batches each, every micro-batch loss
  Σ M·ℓ / L − c·H̄_mb, gradients summed over micro-batches and averaged over ranks (method §1.3).
"""

from __future__ import annotations

import copy

import pytest
import torch

from luffy.algos import LossConfig, entropy_bonus, policy_loss
from luffy.model.load import load_model
from luffy.train.tensors import collate, token_logprobs
from luffy.train.update import Micro, UpdateSpec, run_update, with_totals

L = 6  # response width = norm_length


class _Recorder:
    """An 'optimizer' that records the gradient at step() instead of changing the weights."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model, self.grads = model, None

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.model.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.grads = {n: p.grad.detach().clone() for n, p in self.model.named_parameters() if p.grad is not None}


class _Sched:
    def step(self) -> None:
        pass

    def get_last_lr(self) -> list[float]:
        return [0.0]


@pytest.fixture(scope="module")
def model(base_model):
    m, _ = load_model(base_model, dtype="float32")
    m.train()
    return m


def _batch(n: int = 8, seed: int = 0, equal_lengths: bool = False):
    """n sequences: prompts of 3-5 tokens, responses of 2-L tokens (L when ``equal_lengths``); every
    fourth sequence off-policy; random advantages and π_old log-probs near the policy's."""
    g = torch.Generator().manual_seed(seed)
    prompts, resps, offs = [], [], []
    for i in range(n):
        prompts.append(torch.randint(4, 60, (3 + i % 3,), generator=g).tolist())
        r = L if equal_lengths else 2 + (i * 3) % (L - 1)
        resps.append(torch.randint(4, 60, (r,), generator=g).tolist())
        offs.append([i % 4 == 3] * r)
    adv = torch.randn(n, generator=g)
    old_noise = 0.05 * torch.randn(n, L, generator=g)
    return prompts, resps, offs, adv, old_noise


def _plan(batch, micro: int, model, with_old: bool = True) -> list[Micro]:
    prompts, resps, offs, adv, noise = batch
    micros = []
    for s in range(0, len(prompts), micro):
        idx = list(range(s, min(len(prompts), s + micro)))
        mb = collate([prompts[i] for i in idx], [resps[i] for i in idx], [offs[i] for i in idx], pad_id=0)
        old = None
        if with_old:
            with torch.no_grad():
                lp, _ = token_logprobs(model, mb, with_entropy=False)
            old = (lp + noise[idx, : lp.shape[1]]) * mb.resp_mask
        micros.append(Micro(mb, old, adv[idx], torch.tensor([offs[i][0] for i in idx])))
    return with_totals(micros)


def _grads(model, plan: list[Micro], spec: UpdateSpec, world: int = 1) -> dict[str, torch.Tensor]:
    """The gradient of one optimizer step: summed over ``world`` ranks, each running its share."""
    total: dict[str, torch.Tensor] = {}
    for rank in range(world):
        m = copy.deepcopy(model)
        rec = _Recorder(m)
        res = run_update(m, rec, _Sched(), [plan], spec, rank=rank, world=world)
        assert not res.bad
        for k, v in rec.grads.items():
            total[k] = total[k] + v if k in total else v
    return total


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _spec(loss: LossConfig, *, kind: str = "rl", objective: str = "policy", ent: float = 0.01,
          sft_coef: float = 1.0) -> UpdateSpec:
    return UpdateSpec(kind=kind, temperature=1.0, loss=loss if kind == "rl" else None,
                      off_policy_objective=objective, sft_coef=sft_coef, entropy_coef=ent, grad_clip=1e9)


CASES = {
    "luffy_token_sum_norm": _spec(LossConfig(norm_length=L)),
    "token_mean_clip": _spec(LossConfig(aggregation="token_mean", shaping="identity",
                                        clip={"eps_low": 0.2, "eps_high": 0.2})),
    "seq_mean_token_mean": _spec(LossConfig(aggregation="seq_mean_token_mean")),
    "rl_sft_loss": _spec(LossConfig(norm_length=L), objective="sft", sft_coef=0.7),
    "sft": _spec(LossConfig(), kind="sft"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradient_does_not_depend_on_micro_batch_size(model, case):
    spec, batch = CASES[case], _batch()
    ref = _grads(model, _plan(batch, 8, model, spec.kind == "rl"), spec)
    assert max(float(v.abs().max()) for v in ref.values()) > 1e-4  # a real gradient
    for micro in (1, 2, 3):
        assert _max_diff(_grads(model, _plan(batch, micro, model, spec.kind == "rl"), spec), ref) < 1e-6, micro


@pytest.mark.parametrize("case", ["luffy_token_sum_norm", "rl_sft_loss", "sft"])
def test_gradient_one_worker_equals_two(model, case):
    spec, batch = CASES[case], _batch(seed=1)
    plan = _plan(batch, 2, model, spec.kind == "rl")
    assert _max_diff(_grads(model, plan, spec, world=2), _grads(model, plan, spec, world=1)) < 1e-6
    plan3 = _plan(batch, 3, model, spec.kind == "rl")  # 3 micro-batches on 2 ranks: one padding pass
    assert _max_diff(_grads(model, plan3, spec, world=2), _grads(model, plan, spec, world=1)) < 1e-6


def test_gradient_equals_the_reference_per_step_objective(model):
    """D = 2 ranks × K = 2 micro-batches of 2 sequences, equal response lengths (so equal token counts,
    which is when a token mean over the mini-batch equals the mean of micro-batch means)."""
    d, k, c_ent = 2, 2, 0.01
    batch = _batch(n=d * k * 2, seed=2, equal_lengths=True)
    ref_loss_cfg = LossConfig(norm_length=L)  # the reference's per-micro-batch Σ M·ℓ / L
    plan = _plan(batch, 2, model)

    m = copy.deepcopy(model)
    m.zero_grad(set_to_none=True)
    for mu in plan:  # rank r holds micro-batches r·K .. r·K+K−1; each: pg_mb − c·H̄_mb, backward, sum
        logp, ent = token_logprobs(m, mu.batch, temperature=1.0)
        pg, _ = policy_loss(logp, mu.old_logp, mu.adv, mu.batch.resp_mask, mu.batch.off_mask, ref_loss_cfg)
        ((pg - c_ent * entropy_bonus(ent, mu.batch.resp_mask)) / d).backward()  # FSDP averages over D ranks
    reference = {n: p.grad.detach().clone() for n, p in m.named_parameters() if p.grad is not None}

    ours = _spec(LossConfig(norm_length=L, norm_ranks=d), ent=c_ent * k)
    for micro in (1, 4, 8):
        assert _max_diff(_grads(model, _plan(batch, micro, model), ours), reference) < 1e-6, micro
