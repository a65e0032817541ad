"""The old-log-prob pass is skipped where it provably equals the update's own log-probs (the first
mini-batch of a step's first epoch) and kept elsewhere; loss, gradients and weights are the same."""

import pytest
import torch
from support import TINY, tiny_overrides

from luffy.algos.loss import LossConfig
from luffy.config import load_run_config
from luffy.train import Trainer
from luffy.train.tensors import collate, token_logprobs
from luffy.train.update import Micro, UpdateSpec, micro_loss


def _one_step(cfg, out, recompute: bool):
    t = Trainer(cfg, out, progress=False, log=lambda *a, **k: None)
    t.always_recompute_old_logp = recompute
    calls = []
    try:
        t.setup()
        orig = t._old_logprobs
        t._old_logprobs = lambda batches: calls.append(sum(b.input_ids.shape[0] for b in batches)) or orig(batches)
        met = t.rl_step(1)
        weights = {k: v.detach().clone() for k, v in t.model.state_dict().items()}
    finally:
        t.close()
    return met, weights, sum(calls)


@pytest.mark.parametrize("mini, reused", [(4, 4), (2, 2)])  # prompts per optimizer step; prompts reused
def test_skip_equals_separate_pass(task_dir, base_model, tmp_path, mini, reused):
    sets = tiny_overrides(task_dir, base_model, steps=1, **{"train.mini_batch_prompts": mini,
                                                             "model.dtype": "float32"})
    cfg = load_run_config(TINY / "luffy.yaml", sets)
    group = cfg.group.n_on + cfg.group.n_off
    fast, w_fast, n_fast = _one_step(cfg, tmp_path / "fast", recompute=False)
    slow, w_slow, n_slow = _one_step(cfg, tmp_path / "slow", recompute=True)
    assert n_slow == cfg.train.prompts_per_step * group          # every sequence recomputed
    assert n_fast == n_slow - reused * group                      # the first mini-batch is not
    for k in ("actor/pg_loss", "reward/mean", "entropy/all"):
        assert fast[k] == pytest.approx(slow[k], rel=0, abs=1e-6), k
    for k in w_slow:
        torch.testing.assert_close(w_fast[k], w_slow[k], rtol=0, atol=1e-6, msg=k)
    if mini == cfg.train.prompts_per_step:  # one mini-batch: no separate pass at all
        assert n_fast == 0


def test_micro_loss_without_old_logp_uses_current_policy(base_model):
    """Micro.old_logp None (π_old = the current policy) gives the loss and gradient of passing
    the current policy's log-probs explicitly."""
    from luffy.model.load import load_model

    model, _ = load_model(base_model, dtype="float32")
    model.train()
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(4, 200, (n,), generator=g).tolist() for n in (4, 7)]
    resps = [torch.randint(4, 200, (n,), generator=g).tolist() for n in (5, 3)]
    mb = collate(prompts, resps, [[False] * 5, [True] * 3], pad_id=0)
    spec = UpdateSpec(kind="rl", temperature=1.0, loss=LossConfig(norm_length=8), off_policy_objective="policy",
                      sft_coef=1.0, entropy_coef=0.001, grad_clip=1.0)
    adv, seq_off = torch.tensor([0.7, -0.3]), torch.tensor([False, True])

    def loss_and_grads(old):
        model.zero_grad(set_to_none=True)
        loss, _ = micro_loss(model, Micro(mb, old, adv, seq_off), spec)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    with torch.no_grad():
        explicit, _ = token_logprobs(model, mb, with_entropy=False)
    la, ga = loss_and_grads(None)
    lb, gb = loss_and_grads(explicit * mb.resp_mask)
    assert torch.equal(la, lb)
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
