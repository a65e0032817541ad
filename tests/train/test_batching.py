"""Micro-batches are cut longest first within each mini-batch: the same members per mini-batch, less
padding, the old-log-prob pass over the same members, and the same objective and gradient as
micro-batches cut in group order."""

import torch

from luffy.algos.loss import LossConfig
from luffy.data.schema import TrainRow
from luffy.rollout.groups import Member
from luffy.train import batching as B
from luffy.train.update import Micro, UpdateSpec, micro_loss, with_totals


def _members(n_prompts: int = 4, group: int = 4) -> list[Member]:
    """Groups of ``group`` members with response lengths that vary within and across groups; the
    last member of a group is off-policy."""
    g = torch.Generator().manual_seed(0)
    row = TrainRow(id="r", prompt=[{"role": "user", "content": "q"}], answer="1")
    out = []
    for p in range(n_prompts):
        prompt = torch.randint(4, 200, (3 + p,), generator=g).tolist()
        for j in range(group):
            n = int(torch.randint(1, 30, (1,), generator=g))
            off = j == group - 1
            out.append(Member(p, row, prompt, torch.randint(4, 200, (n,), generator=g).tolist(), [off] * n, "stop"))
    return out


def _widths(plan) -> list[list[int]]:
    return [[mu.batch.input_ids.shape[1] for mu in mini] for mini in plan]


def test_micro_batches_are_cut_longest_first_with_less_padding():
    members = _members()
    layout = B.layout_step(members, 4, mini_batch_prompts=2, ppo_epochs=1)
    adv = torch.zeros(len(members))
    old = {i: torch.zeros(len(m.response_ids)) for i, m in enumerate(members)}
    collate = lambda ms: B.collate_members(ms, pad_id=0)
    plan = B.build_plan(layout, members, adv, old, micro_batch_seqs=3, collate_fn=collate)
    for mini, micros in zip(layout.minis, plan):
        want = sorted(len(m.prompt_ids) + len(m.response_ids) for g in mini for m in members if m.group == g)
        got = sorted(int(n) for mu in micros for n in mu.batch.attn.sum(1))
        assert got == want                                                      # the mini-batch's members, once each
    for widths in _widths(plan):
        assert widths == sorted(widths, reverse=True)
    group_order = [[collate([members[i] for i in idx]) for idx in B.chunks([i for g in mini for i in layout.members_of[g]], 3)]
                   for mini in layout.minis]
    padded = sum(mu.batch.input_ids.numel() for mini in plan for mu in mini)
    assert padded < sum(mb.input_ids.numel() for mini in group_order for mb in mini)
    lp = B.old_logp_batches(layout, members, micro_batch_seqs=3)
    flat = [i for idx in lp for i in idx]
    assert sorted(flat) == sorted(set(range(len(members))) - layout.reuse)
    lengths = [len(members[i].prompt_ids) + len(members[i].response_ids) for i in flat]
    assert lengths == sorted(lengths, reverse=True)


def test_longest_first_keeps_the_objective_and_gradient(base_model):
    """The mini-batch's loss (sum of its micro-batches' shares) and gradient do not depend on the cut."""
    from luffy.model.load import load_model

    model, _ = load_model(base_model, dtype="float32")
    model.train()
    members = _members()
    adv = torch.linspace(-1, 1, len(members))
    spec = UpdateSpec(kind="rl", temperature=1.0, loss=LossConfig(norm_length=32), off_policy_objective="policy",
                      sft_coef=1.0, entropy_coef=0.001, grad_clip=1.0)

    def loss_and_grad(order: list[int]):
        model.zero_grad(set_to_none=True)
        micros = with_totals([Micro(B.collate_members([members[i] for i in idx], 0), None, adv[idx],
                                    torch.tensor([members[i].is_off for i in idx])) for idx in B.chunks(order, 3)])
        total = sum(micro_loss(model, mu, spec)[0] for mu in micros)
        total.backward()
        return total.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])

    every = list(range(len(members)))
    l_group, g_group = loss_and_grad(every)
    l_sorted, g_sorted = loss_and_grad(B.longest_first(every, members))
    torch.testing.assert_close(l_sorted, l_group, rtol=0, atol=1e-6)
    torch.testing.assert_close(g_sorted, g_group, rtol=1e-5, atol=1e-7)
