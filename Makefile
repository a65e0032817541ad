# Entry points. `make run` and `make test` do all set-up on a fresh machine (scripts/setup.sh).
SHELL := /bin/bash
CORES ?= 2
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: setup run test smoke dryrun-slurm lint reliability bench gpu-check clean

setup:
	@bash scripts/setup.sh

## the default (tiny, CPU) pipeline: data -> base model -> training grid -> evaluation -> tables and figures
run: setup
	.venv-wf/bin/snakemake --cores $(CORES) all

## the test suite (GPU tests run only where CUDA is available; they say so when skipped)
test: setup
	@.venv/bin/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests were collected"; rc=0; fi; exit $$rc

smoke: setup
	.venv-wf/bin/snakemake --cores $(CORES) --configfile=config/smoke.yaml all

## the reliability suite at full size (10 kill/resume trials); figures for RELIABILITY.md in results/reliability
reliability: setup
	LUFFY_KILL_TRIALS=10 LUFFY_RELIABILITY_OUT=$(CURDIR)/results/reliability \
	  .venv/bin/python -m pytest tests/reliability $(PYTEST_ARGS)
	.venv/bin/python scripts/reliability_table.py results/reliability

## the benchmarks of BENCHMARKS.md (about 15 min on 2 cores); one JSON record each in benchmarks/results/
bench: setup
	.venv/bin/python -m luffy bench all --threads $(CORES) --out benchmarks/results $(BENCH_ARGS)

## the GPU check of issue #6 on a CUDA host (FSDP2 + bf16 step, MFU, HF generation); needs the
## envs/luffy-gpu.yaml environment active (the .venv torch is a CPU build); prints rows for BENCHMARKS.md
gpu-check:
	@bash scripts/gpu-check.sh

lint: setup
	.venv/bin/ruff check src tests
	.venv-wf/bin/snakefmt --check Snakefile workflow
	.venv-wf/bin/snakemake --lint

clean:
	rm -rf results/* .snakemake
