"""Does on-policy policy-gradient on a few prompts help those prompts and hurt the others?

A diagnostic of the tiny study (docs/miniature-step-size.md, "Interference across prompts"),
written apart from the trainer so that it also checks the trainer: plain REINFORCE with the group
mean as baseline and the token sum divided by a constant length (Dr.GRPO, the tiny runs' loss
without clip or entropy term), AdamW, rollouts at T = 1 from Hugging Face ``generate``, the
project's math-verify reward. It measures the reward of the first 8 trained prompts ("A", 32
samples each) and of 64 prompts it never trains on ("B", 8 samples each), at T = 1 and T = 0.6,
before and after ``--updates`` updates, each on fresh samples of the same ``--prompts`` prompts.

    PYTHONPATH=src python scripts/probe_interference.py --model MODEL --data TRAIN.jsonl \\
        --lr 1e-4 --updates 10 --samples 8 --prompts 8
"""

from __future__ import annotations

import argparse
import json
import random

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from luffy.data.templates import render_prompt
from luffy.rewards.math_verify_reward import math_verify_reward

MAX_NEW = 96  # the tiny runs' response budget and Dr.GRPO constant


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="a train.jsonl of the tiny task")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--updates", type=int, default=10)
    ap.add_argument("--samples", type=int, default=8, help="samples per prompt per update")
    ap.add_argument("--prompts", type=int, default=8, help="prompts per update (the same ones each time)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    tok = AutoTokenizer.from_pretrained(a.model)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    with open(a.data, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    rng.shuffle(rows)
    trained, held_out = rows[: a.prompts], rows[100:164]

    def sample(batch, n, temperature=1.0):
        texts = [render_prompt(tok, r["prompt"]) for r in batch for _ in range(n)]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, do_sample=True, temperature=temperature, top_p=1.0,
                                 max_new_tokens=MAX_NEW, pad_token_id=tok.pad_token_id,
                                 eos_token_id=tok.eos_token_id)
        gen = out[:, enc["input_ids"].shape[1]:]
        texts = [t.replace(tok.pad_token, "") for t in tok.batch_decode(gen, skip_special_tokens=False)]
        answers = [r["answer"] for r in batch for _ in range(n)]
        reward = torch.tensor([math_verify_reward(t, ans) for t, ans in zip(texts, answers)])
        return enc["input_ids"].shape[1], out, gen, reward

    def report(tag):
        rewards = [sample(batch, n, t)[3].mean().item()
                   for batch, n in ((trained[:8], 32), (held_out, 8)) for t in (1.0, 0.6)]
        print(f"{tag}: trained T=1 {rewards[0]:.3f}  T=0.6 {rewards[1]:.3f}  |  "
              f"held-out T=1 {rewards[2]:.3f}  T=0.6 {rewards[3]:.3f}", flush=True)

    report("before")
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)
    for k in range(a.updates):
        n_prompt, out, gen, reward = sample(trained, a.samples)
        grouped = reward.view(a.prompts, a.samples)
        adv = (grouped - grouped.mean(1, keepdim=True)).view(-1)
        mask = (gen != tok.pad_token_id).float()  # the response and its EOS
        logits = model(input_ids=out, attention_mask=(out != tok.pad_token_id).long()).logits
        logp = torch.log_softmax(logits[:, n_prompt - 1:-1].float(), -1).gather(-1, gen.unsqueeze(-1)).squeeze(-1)
        loss = -(adv[:, None] * logp * mask).sum() / (len(adv) * MAX_NEW)
        opt.zero_grad()
        loss.backward()
        opt.step()
        print(f"update {k + 1}: reward of its samples {reward.mean():.3f}", flush=True)
    report("after")


if __name__ == "__main__":
    main()
