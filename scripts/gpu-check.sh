#!/usr/bin/env bash
# The prepared GPU check of issue #6: runs the tests marked `gpu` in tests/gpu (tests/gpu/test_gpu_step.py)
# on one CUDA GPU and prints Markdown rows for BENCHMARKS.md:
#   * an FSDP2 + bf16 LUFFY update step (NCCL, fp32 master weights, bf16 compute) of a random-init
#     Qwen2.5-0.5B-shaped model through the distributed worker's code, without and with gradient
#     checkpointing: update seconds, tokens/s, achieved FLOP/s, the bf16 matmul peak measured on the
#     same GPU in the same run, MFU;
#   * HF-engine generation with the same model in bf16: generated tokens/s.
#
# Environment. The runtime venv (.venv, scripts/setup.sh) holds the CPU build of torch and cannot run
# this. On a GPU host use the CUDA environment of envs/luffy-gpu.yaml (torch from PyPI, a CUDA build;
# vLLM's CUDA build; pytest):
#     conda env create -f envs/luffy-gpu.yaml && conda activate luffy-gpu
#     make gpu-check            # or: bash scripts/gpu-check.sh
# Python: $PYTHON if set, else the active conda environment's python, else .venv/bin/python, else
# python3. Any Python with a CUDA torch, transformers, tokenizers, safetensors, pydantic, pyyaml and
# pytest will do: when luffy is not installed in it, src/ is put on PYTHONPATH.
#
# Output: one JSON record per test in $LUFFY_GPU_OUT (default results/gpu-check/<date-time>/) and the
# pytest log there (pytest.log).
# Exit status: 2 with one line on stderr when torch sees no CUDA device; else pytest's.
#
#   bash scripts/gpu-check.sh --table DIR    only print the Markdown rows of the records in DIR
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -n "${PYTHON:-}" ]]; then PY="$PYTHON"
elif [[ -n "${CONDA_PREFIX:-}" && -x "$CONDA_PREFIX/bin/python" ]]; then PY="$CONDA_PREFIX/bin/python"
elif [[ -x .venv/bin/python ]]; then PY=.venv/bin/python
else PY=python3
fi

table() {  # Markdown rows of the JSON records in $1: one per training measurement
  "$PY" - "$1" <<'EOF'
import json, sys
from pathlib import Path

recs = [json.loads(p.read_text()) for p in sorted(Path(sys.argv[1]).glob("*.json"))]
gen = {(r["model"], r["device"]): r for r in recs if r.get("check") == "generate"}
train = [r for r in recs if r.get("check") == "train"]
if not train:
    sys.exit(f"gpu-check: error: no training record in {sys.argv[1]}")
print("| card | model | precision | grad. ckpt | tokens/update | update s | old-logp pass s | update tokens/s "
      "| achieved TFLOP/s | matmul peak TFLOP/s (measured, compute dtype) | MFU "
      "| HF generate tokens/s (batch × new) |")
print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in train:
    g = gen.get((r["model"], r["device"]))
    gtxt = f"{g['tokens_per_s']:.0f} ({g['batch']} × {g['new_tokens']})" if g else "not measured"
    print(f"| {r['device_name']} | {r['model']} ({r['params'] / 1e6:.3g}M) | fp32 master, {r['compute_dtype']} "
          f"compute, FSDP2 ×{r['fsdp_world_size']} | {'yes' if r['gradient_checkpointing'] else 'no'} "
          f"| {r['tokens_per_update']} | {r['update_s']:.3f} | {r['old_logp_s']:.3f} "
          f"| {r['update_tokens_per_s']:.0f} | {r['achieved_tflops_per_s']:.4g} | {r['peak_tflops_per_s']:.4g} "
          f"| {r['mfu'] * 100:.1f}% | {gtxt} |")
EOF
}

if [[ "${1:-}" == "--table" ]]; then
  [[ -d "${2:-}" ]] || { echo "gpu-check: error: --table needs a folder of records, got '${2:-}'" >&2; exit 2; }
  table "$2"
  exit
fi

# One clear line when this Python's torch cannot use a GPU (the CPU build, or no device).
"$PY" - <<'EOF' || exit 2
import sys
try:
    import torch
except ImportError as e:
    sys.exit(f"gpu-check: error: {sys.executable} cannot import torch ({e}); use envs/luffy-gpu.yaml")
if not torch.cuda.is_available():
    sys.exit(f"gpu-check: error: torch {torch.__version__} in {sys.executable} sees no CUDA device "
             f"(CPU build or no GPU); on a GPU host use envs/luffy-gpu.yaml (header of scripts/gpu-check.sh)")
EOF

if command -v nvidia-smi >/dev/null; then
  echo "card: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -n1)"
else
  echo "card: (nvidia-smi not found) $("$PY" -c 'import torch; print(torch.cuda.get_device_name(0))')"
fi
"$PY" -c "import luffy" 2>/dev/null || export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import torch, transformers; print(f'python: $PY  torch {torch.__version__} (CUDA {torch.version.cuda})  transformers {transformers.__version__}')"

export LUFFY_GPU_OUT="${LUFFY_GPU_OUT:-results/gpu-check/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$LUFFY_GPU_OUT"
echo "records: $LUFFY_GPU_OUT"
set +e
PYTHONUNBUFFERED=1 "$PY" -m pytest -m gpu tests/gpu -s -q -p no:cacheprovider 2>&1 | tee "$LUFFY_GPU_OUT/pytest.log"
rc=${PIPESTATUS[0]}
set -e
echo
echo "Rows for BENCHMARKS.md (records in $LUFFY_GPU_OUT):"
table "$LUFFY_GPU_OUT" || true
exit "$rc"
