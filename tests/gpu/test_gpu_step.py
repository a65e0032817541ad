"""GPU check of issue #6: FSDP2 + bf16 training steps and HF-engine generation, Qwen2.5-0.5B shape.

One function per measurement, parametrized by model size and device:

* :func:`train_check` -- the distributed worker's own code (:class:`luffy.train.distributed.worker.TrainWorker`,
  the class a Ray actor wraps) run in this process as rank 0 of a world of 1: ``torch.distributed``
  (NCCL on CUDA, gloo on CPU), ``fully_shard`` per decoder layer + root, on CUDA
  ``MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)`` over fp32 master weights (method §8),
  AdamW + LR schedule from the run config. Each step is the trainer's update phase for one
  mini-batch: the old-log-prob pass (``TrainWorker.old_logprobs``, method §1.0 step 6) and the update
  (``TrainWorker.update`` -> :func:`luffy.train.update.run_update`: LUFFY policy loss with
  f(p) = p/(p+0.1), no clip, token-sum / L (Dr.GRPO), entropy bonus; paper Eq. 6), on a batch of
  mixed sequences (every second one off-policy, random ids, random advantages, no padding).
  Loss settings come from ``config/experiments/tiny/luffy.yaml``.
* :func:`generate_check` -- :class:`luffy.rollout.hf_engine.HFEngine` sampling from the same
  model folder (loaded by :func:`luffy.model.load.load_model`, bf16 on CUDA), fixed-length
  responses (``min_new_tokens = max_new_tokens``) so that the token count is known.

Measured (printed; one JSON file per test in ``$LUFFY_GPU_OUT`` when that is set): update seconds
(mean of the timed steps after ``warmup`` untimed ones, device synchronized), old-log-prob seconds,
update tokens/s, achieved FLOP/s, the matmul peak of the compute dtype measured on the same device
in the same test, MFU = achieved / peak; generation tokens/s. FLOPs per update are
:func:`luffy.bench.mfu.update_flops` (6·N·tokens + 12·layers·d_attn·ctx·tokens, the formula of
``luffy bench mfu``), so the MFU here and there are the same quantity.

Deliberate deviations: the matmul peak is measured here (:func:`matmul_peak_on`) rather than by
:func:`luffy.bench.mfu.matmul_peak`, which allocates on the CPU and times without a device
synchronize (asynchronous CUDA kernels would be timed at launch); likewise the batch is built
here rather than by ``luffy.bench.mfu.update_step``, which keeps micro-batches on the CPU. The
model is a random-init Qwen2.5-0.5B shape (no hub download) with the project's byte tokenizer
(the model's vocabulary is larger than the tokenizer's; only ids matter here).

The CUDA variants carry the ``gpu`` mark (skipped with the reason in tests/conftest.py where CUDA
is absent); the CPU variants run the same functions on a tiny shape in CI.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
LUFFY_YAML = REPO / "config" / "experiments" / "tiny" / "luffy.yaml"


@dataclass(frozen=True)
class Size:
    """A model shape (Qwen2 architecture, tied embeddings) and the work measured on it."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    rope_theta: float
    max_positions: int
    # update: ``seqs`` sequences of prompt_len + resp_len ids, micro-batches of ``micro``
    seqs: int
    micro: int
    prompt_len: int
    resp_len: int
    warmup: int
    steps: int
    # generation: gen_prompts × gen_n samples of gen_tokens new ids after gen_prompt_len prompt ids
    gen_prompts: int
    gen_n: int
    gen_prompt_len: int
    gen_tokens: int
    # matmul peak: square sizes and total seconds
    peak_sizes: tuple[int, ...]
    peak_seconds: float


SIZES = {
    # Qwen2.5-0.5B's configuration (config.json of Qwen/Qwen2.5-0.5B): 494M parameters.
    "qwen2.5-0.5b": Size(hidden=896, layers=24, heads=14, kv_heads=2, intermediate=4864, vocab=151936,
                         rope_theta=1e6, max_positions=32768,
                         seqs=32, micro=8, prompt_len=256, resp_len=768, warmup=1, steps=3,
                         gen_prompts=8, gen_n=8, gen_prompt_len=256, gen_tokens=256,
                         peak_sizes=(4096, 8192), peak_seconds=3.0),
    # The same code path at a size that runs in a few seconds on 2 CPU cores.
    "tiny": Size(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, vocab=512,
                 rope_theta=1e6, max_positions=512,
                 seqs=4, micro=2, prompt_len=8, resp_len=16, warmup=1, steps=2,
                 gen_prompts=2, gen_n=2, gen_prompt_len=8, gen_tokens=8,
                 peak_sizes=(256,), peak_seconds=0.2),
}


def train_dtype(device: str) -> str:
    """``model.dtype`` of the run: bf16 on CUDA (FSDP2 mixed precision over fp32 masters), fp32 on CPU."""
    return "bfloat16" if device == "cuda" else "float32"


def compute_dtype(device: str) -> torch.dtype:
    return torch.bfloat16 if device == "cuda" else torch.float32


# ------------------------------------------------------------------------------------------------
# model folder


def write_model(size: Size, folder: Path, device: str, seed: int = 0) -> Path:
    """A random-init Qwen2 model of ``size`` (fp32) + the project's byte tokenizer, saved as an HF folder."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from luffy.model.tiny import build_tokenizer

    tok = build_tokenizer()
    assert len(tok) <= size.vocab
    cfg = Qwen2Config(vocab_size=size.vocab, hidden_size=size.hidden, intermediate_size=size.intermediate,
                      num_hidden_layers=size.layers, num_attention_heads=size.heads,
                      num_key_value_heads=size.kv_heads, max_position_embeddings=size.max_positions,
                      rope_parameters={"rope_type": "default", "rope_theta": size.rope_theta},
                      rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=None,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    with torch.device(device):  # initialising 0.5B parameters is much faster on the GPU
        model = Qwen2ForCausalLM(cfg)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """``get(size_name, device)`` -> a model folder, written once per module."""
    made: dict[str, Path] = {}

    def get(name: str, device: str) -> Path:
        if name not in made:
            made[name] = write_model(SIZES[name], tmp_path_factory.mktemp(f"model-{name}") / "m", device)
        return made[name]

    return get


# ------------------------------------------------------------------------------------------------
# measurement helpers


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _release(device: str) -> None:
    """Free what an earlier check left (FSDP modules hold reference cycles) and reset the memory peak."""
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def matmul_peak_on(device: str, dtype: torch.dtype, sizes: tuple[int, ...], seconds: float) -> dict[str, Any]:
    """FLOP/s of ``a @ b`` (n × n, ``dtype``, on ``device``): 2·n³ per product, best of 3 timed rounds
    (each ≥ seconds/3/len(sizes), device synchronized) per n; the peak is the best over ``sizes``."""
    by_n: dict[str, float] = {}
    for n in sizes:
        g = torch.Generator(device=device).manual_seed(0)
        a = torch.randn(n, n, generator=g, device=device).to(dtype)
        b = torch.randn(n, n, generator=g, device=device).to(dtype)
        c = torch.empty(n, n, dtype=dtype, device=device)
        torch.matmul(a, b, out=c)  # kernel selection
        _sync(device)
        best = 0.0
        for _ in range(3):
            reps, t0 = 0, time.perf_counter()
            while True:
                for _ in range(4):
                    torch.matmul(a, b, out=c)
                reps += 4
                _sync(device)
                dt = time.perf_counter() - t0
                if dt >= seconds / 3 / len(sizes):
                    break
            best = max(best, 2 * n**3 * reps / dt)
        by_n[str(n)] = best
        del a, b, c
    peak = max(by_n.values())
    return {"flops_per_s": peak, "by_n": {k: round(v / 1e12, 4) for k, v in by_n.items()}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_config(folder: Path, size: Size, device: str, checkpointing: bool):
    from luffy.config import load_run_config

    return load_run_config(LUFFY_YAML, [
        f"model.path={folder}", f"model.dtype={train_dtype(device)}",
        f"model.gradient_checkpointing={str(checkpointing).lower()}",
        f"data.max_prompt_tokens={size.prompt_len}", f"data.max_response_tokens={size.resp_len}",
        "loss.norm_length=null",
    ])


def _environment(device: str) -> dict[str, Any]:
    import transformers

    env = {"torch": torch.__version__, "transformers": transformers.__version__,
           "python": platform.python_version()}
    if device == "cuda":
        v = torch.cuda.nccl.version()
        env.update(device_name=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                   nccl=str(v) if isinstance(v, int) else ".".join(map(str, v)))
    else:
        env.update(device_name=platform.processor() or platform.machine(), threads=torch.get_num_threads())
    return env


def emit(record: dict[str, Any], name: str) -> None:
    """Print ``record`` and, when ``$LUFFY_GPU_OUT`` is set, write it there as ``<name>.json``."""
    text = json.dumps(record, indent=1, sort_keys=True)
    print(f"\n{name}: {text}")
    out = os.environ.get("LUFFY_GPU_OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / f"{name}.json").write_text(text + "\n")


# ------------------------------------------------------------------------------------------------
# the two checks


def train_check(size_name: str, device: str, checkpointing: bool, folder: Path) -> dict[str, Any]:
    """``warmup + steps`` LUFFY update steps of the FSDP2 worker on ``device``; asserts a finite loss and
    grad-norm every step, every weight changed, bf16 compute over fp32 masters on CUDA; returns the record."""
    from torch.distributed.fsdp import FSDPModule

    from luffy.bench.mfu import make_batch, update_flops
    from luffy.train.distributed.worker import TrainWorker
    from luffy.train.tensors import collate
    from luffy.train.update import Micro, UpdateSpec, with_totals

    size = SIZES[size_name]
    cdt = compute_dtype(device)
    _release(device)
    peak = matmul_peak_on(device, cdt, size.peak_sizes, size.peak_seconds)
    cfg = _run_config(folder, size, device, checkpointing)
    spec = UpdateSpec.from_config(cfg)
    assert spec.loss.shaping.name == "luffy" and spec.loss.norm_length == size.resp_len

    worker = TrainWorker(rank=0, world=1, device=device, threads=torch.get_num_threads())
    try:
        worker.init_process_group("127.0.0.1", _free_port(), timeout_s=300)
        t0 = time.perf_counter()
        info = worker.setup(cfg, opt_steps_total=size.warmup + size.steps)
        setup_s = time.perf_counter() - t0
        model = worker.model
        assert isinstance(model, FSDPModule)
        assert model.is_gradient_checkpointing == checkpointing
        masters = {p.dtype for p in model.parameters()}
        assert masters == {torch.float32}, masters
        seen: list[torch.dtype] = []
        hook = model.model.layers[0].register_forward_hook(
            lambda m, a, out: seen.append((out[0] if isinstance(out, tuple) else out).dtype))
        # cloned: on CPU with one rank the gathered tensors can share storage with the parameters
        before = {k: v.clone() for k, v in worker.full_state_dict().items()}

        pad = 0  # the byte tokenizer's <|pad|>; make_batch draws ids >= 4, so no id is a pad or EOS
        prompts, resps, off, adv = make_batch(size.seqs, size.prompt_len, size.resp_len, size.vocab, pad)
        batches, rows = [], []
        for s in range(0, size.seqs, size.micro):
            idx = list(range(s, min(size.seqs, s + size.micro)))
            batches.append(collate([prompts[i] for i in idx], [resps[i] for i in idx], [off[i] for i in idx],
                                   pad))
            rows.append(idx)
        n_off = sum(o[0] for o in off)
        assert 0 < n_off < size.seqs  # a mixed batch

        old_s, upd_s, losses, grad_norms = [], [], [], []
        for step in range(size.warmup + size.steps):
            _sync(device)
            t0 = time.perf_counter()
            old = worker.old_logprobs(batches, spec.temperature)
            _sync(device)
            t1 = time.perf_counter()
            plan = [with_totals([Micro(b, old[j], adv[rows[j]], torch.tensor([off[i][0] for i in rows[j]]))
                                 for j, b in enumerate(batches)])]
            res = worker.update(plan, spec)
            _sync(device)
            t2 = time.perf_counter()
            assert not res.bad, f"step {step}: non-finite loss or gradient"
            assert len(res.grad_norms) == 1 and 0 < res.grad_norms[0] < float("inf")
            pg = [st["pg_loss"] for st in res.ordered()]
            assert len(pg) == len(batches) and all(abs(v) < float("inf") for v in pg), pg
            losses.append(sum(pg))  # each micro-batch's pg loss is its share of the mini-batch's
            grad_norms.append(res.grad_norms[0])
            if step >= size.warmup:
                old_s.append(t1 - t0)
                upd_s.append(t2 - t1)
        hook.remove()
        assert seen and set(seen) == {cdt}, f"decoder layer computed in {set(seen)}, expected {cdt}"

        after = worker.full_state_dict()
        assert before.keys() == after.keys()
        unchanged = [k for k in before if torch.equal(before[k], after[k])]
        assert not unchanged, f"{len(unchanged)} of {len(before)} tensors unchanged, e.g. {unchanged[:3]}"
        max_dw = max(float((after[k] - before[k]).abs().max()) for k in before)
        del before, after

        fl = update_flops(model, size.seqs, size.prompt_len + size.resp_len)
        upd = sum(upd_s) / len(upd_s)
        achieved = fl["flops"] / upd
        mem = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    finally:
        worker.shutdown()

    return {
        "check": "train", "model": size_name, "device": device, **_environment(device),
        "params": info["params"], "matmul_params": fl["matmul_params"], "setup_s": round(setup_s, 2),
        "master_dtype": "float32", "compute_dtype": str(cdt).removeprefix("torch."),
        "gradient_checkpointing": checkpointing, "fsdp_world_size": 1,
        "seqs": size.seqs, "micro_batch_seqs": size.micro, "prompt_len": size.prompt_len,
        "resp_len": size.resp_len, "off_policy_seqs": n_off, "tokens_per_update": fl["tokens"],
        "warmup_steps": size.warmup, "timed_steps": size.steps,
        "update_s": round(upd, 4), "update_s_all": [round(x, 4) for x in upd_s],
        "old_logp_s": round(sum(old_s) / len(old_s), 4),
        "step_s": round(upd + sum(old_s) / len(old_s), 4),
        "update_tokens_per_s": round(fl["tokens"] / upd, 1),
        "flops_per_update": fl["flops"], "achieved_flops_per_s": achieved,
        "achieved_tflops_per_s": round(achieved / 1e12, 4), "peak_flops_per_s": peak["flops_per_s"],
        "peak_tflops_per_s": round(peak["flops_per_s"] / 1e12, 4), "peak_tflops_by_n": peak["by_n"],
        "mfu": achieved / peak["flops_per_s"],
        "pg_loss": [round(x, 6) for x in losses], "grad_norm": [round(x, 6) for x in grad_norms],
        "max_abs_weight_change": max_dw, "max_memory_gib": None if mem is None else round(mem, 2),
        "size": asdict(size),
    }


def generate_check(size_name: str, device: str, folder: Path) -> dict[str, Any]:
    """HF-engine sampling (T = 1, top-p 1) of fixed-length responses on ``device``; asserts the layout,
    lengths and id range of every response; returns the record with generated tokens/s."""
    from luffy.bench.common import random_prompts
    from luffy.model.load import load_model
    from luffy.rollout.base import SamplingConfig
    from luffy.rollout.hf_engine import HFEngine

    size = SIZES[size_name]
    dtype = compute_dtype(device)
    _release(device)
    model, tok = load_model(folder, dtype=dtype, device=device)
    assert next(model.parameters()).device.type == device
    engine = HFEngine(model, tokenizer=tok, max_batch_size=size.gen_prompts * size.gen_n)
    prompts = random_prompts(size.gen_prompts, size.gen_prompt_len, size.vocab, seed=3)
    t = size.gen_tokens
    engine.generate(prompts[:1], 1, SamplingConfig(max_new_tokens=4, min_new_tokens=4, seed=0))  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    out = engine.generate(prompts, size.gen_n, SamplingConfig(max_new_tokens=t, min_new_tokens=t, seed=0))
    _sync(device)
    secs = time.perf_counter() - t0

    assert len(out) == size.gen_prompts and all(len(g) == size.gen_n for g in out)
    for p, group in zip(prompts, out):
        for g in group:
            assert g.prompt_ids == p and g.finish_reason == "length" and len(g.response_ids) == t
            assert all(0 <= i < size.vocab for i in g.response_ids)
    distinct = {tuple(g.response_ids) for group in out for g in group}
    assert len(distinct) > 1, "every sample is identical: sampling is not random"
    n_tok = size.gen_prompts * size.gen_n * t
    return {
        "check": "generate", "model": size_name, "device": device, **_environment(device),
        "engine": "hf", "dtype": str(dtype).removeprefix("torch."), "prompts": size.gen_prompts,
        "samples_per_prompt": size.gen_n, "prompt_len": size.gen_prompt_len, "new_tokens": t,
        "batch": size.gen_prompts * size.gen_n, "seconds": round(secs, 4),
        "generated_tokens": n_tok, "tokens_per_s": round(n_tok / secs, 1),
    }


# ------------------------------------------------------------------------------------------------
# tests: the CPU variants run in CI; the CUDA ones are the GPU check (scripts/gpu-check.sh)

GPU = pytest.mark.gpu
TRAIN_CASES = [
    pytest.param("tiny", "cpu", False, id="cpu-tiny"),
    pytest.param("tiny", "cpu", True, id="cpu-tiny-ckpt"),
    pytest.param("qwen2.5-0.5b", "cuda", False, id="cuda-qwen2.5-0.5b", marks=GPU),
    pytest.param("qwen2.5-0.5b", "cuda", True, id="cuda-qwen2.5-0.5b-ckpt", marks=GPU),
]
GEN_CASES = [
    pytest.param("tiny", "cpu", id="cpu-tiny"),
    pytest.param("qwen2.5-0.5b", "cuda", id="cuda-qwen2.5-0.5b", marks=GPU),
]


@pytest.mark.parametrize(("size", "device", "checkpointing"), TRAIN_CASES)
def test_fsdp2_luffy_update_step(size, device, checkpointing, model_folder):
    rec = train_check(size, device, checkpointing, model_folder(size, device))
    emit(rec, f"train-{size}-{device}" + ("-ckpt" if checkpointing else ""))
    assert rec["update_s"] > 0 and 0 < rec["mfu"] < float("inf")
    if device == "cuda":  # a dedicated GPU: MFU above 1 would mean a wrong FLOP count or peak
        assert rec["mfu"] < 1.0, rec["mfu"]


@pytest.mark.parametrize(("size", "device"), GEN_CASES)
def test_hf_engine_generation(size, device, model_folder):
    rec = generate_check(size, device, model_folder(size, device))
    emit(rec, f"generate-{size}-{device}")
    assert rec["tokens_per_s"] > 0
