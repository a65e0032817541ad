"""The tiny model folder serves under vLLM with the same tokens and log-probs as HF (fp32)."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from luffy.data import TaskConfig, load_rows, render_prompt, write_task
from luffy.model import TinyModelConfig, build_base_model, load_model

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed"),
]

FAST = TinyModelConfig(
    hidden_size=64, num_heads=2, num_kv_heads=1, num_layers=2, intermediate_size=128,
    steps=20, warmup_steps=2, batch_size=16, eval_n=0, threads=1,
)  # fmt: skip

# Runs in a child process: vLLM's in-process engine state is process-wide.
VLLM_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from vllm import LLM, SamplingParams
    path, prompts = sys.argv[1], json.loads(sys.argv[2])
    llm = LLM(model=path, dtype="float32", max_model_len=256, enforce_eager=True, seed=0)
    out = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=1, prompt_logprobs=0))
    rows = []
    for r in out:
        lps = [None if d is None else d[t].logprob for t, d in zip(r.prompt_token_ids, r.prompt_logprobs)]
        rows.append({"ids": list(r.prompt_token_ids), "logprobs": lps})
    print("RESULT" + json.dumps(rows))
    """
)


def test_vllm_matches_hf_prompt_logprobs(tmp_path):
    write_task(tmp_path / "task", TaskConfig(n_train=50, n_train_rl=2, n_test_id=4, n_test_ood=2))
    build_base_model(tmp_path / "task", tmp_path / "model", FAST)
    model, tok = load_model(tmp_path / "model", dtype="float32")
    prompts = [
        render_prompt(tok, r.prompt) + r.answer for r in load_rows(tmp_path / "task" / "test_id.jsonl")
    ]
    env = {
        **os.environ,
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    }
    proc = subprocess.run(
        [sys.executable, "-c", VLLM_SCRIPT, str(tmp_path / "model"), json.dumps(prompts)],
        check=False, capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT"))[6:])
    for prompt, got in zip(prompts, result):
        ids = tok(prompt)["input_ids"]
        assert got["ids"] == ids  # vLLM tokenizes exactly like HF
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1], dim=-1)  # [T-1, V]
        want = logp.gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
        assert got["logprobs"][0] is None
        assert torch.allclose(torch.tensor(got["logprobs"][1:]), want, atol=2e-3)
