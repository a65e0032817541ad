"""The sample store of one benchmark: ``<out>/<benchmark>/samples.jsonl``, ``protocol.json`` and the
resume rule (method §5.2).

``samples.jsonl`` holds one record per sample: ``question_id``, ``question_index``, ``sample``,
``response`` (decoded text), ``answer``, ``verdicts`` and ``status`` per grader (status
``ok``/``timeout``/``error``; only ``ok`` can be correct), ``n_tokens`` (EOS included),
``finish_reason``. The runner appends the records of every generation batch and syncs them to disk
(:func:`append_samples`). On restart, :func:`read_complete` keeps the questions with all k graded
samples and rewrites the file without the others, so only those are generated again; a torn last
line (a killed append) is dropped.

``protocol.json`` records how the samples were made: the resolved
:class:`~luffy.eval.protocol.BenchmarkProtocol`, model fingerprint, engine, dtype and chat template,
plus two labels that do not change the samples (:data:`LABELS`: the model's path and the
checkpoint label, e.g. ``final`` or ``best_val``). :func:`check_protocol` refuses (one-line
ConfigError) to add to samples made under another protocol; :func:`reuse_samples` copies another
folder's samples of the same benchmark when they were made under the same protocol, model
fingerprint included (the same weights evaluated twice, e.g. a run whose best-validation
checkpoint is its final model).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from luffy.config import ConfigError
from luffy.data.schema import DataFormatError
from luffy.eval.benchmarks import EvalQuestion
from luffy.eval.protocol import BenchmarkProtocol
from luffy.utils.files import atomic_write_json
from luffy.utils.jsonl import JsonlError, append_jsonl, read_jsonl_lines, write_jsonl

SAMPLES, PROTOCOL = "samples.jsonl", "protocol.json"
STATUSES = ("ok", "timeout", "error")
FINISH_REASONS = ("stop", "length")
#: Header keys that say where a model is and what it is called, not how its samples were made.
LABELS = ("model_path", "checkpoint")


@dataclass
class BenchmarkJob:
    """One benchmark of a run: its questions, protocol, prompt ids and records kept from earlier runs."""

    name: str
    questions: list[EvalQuestion]
    protocol: BenchmarkProtocol
    folder: Path
    prompt_ids: list[list[int]] = field(default_factory=list)
    done: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # question id -> k records

    @property
    def todo(self) -> list[int]:
        return [q.index for q in self.questions if q.id not in self.done]


def check_protocol(job: BenchmarkJob, header: dict[str, Any]) -> None:
    """Write ``protocol.json``; when samples exist, first check that their protocol matches this run."""
    want = _comparable({**header, "protocol": job.protocol.model_dump(mode="json")})
    path, samples = job.folder / PROTOCOL, job.folder / SAMPLES
    has_samples = samples.is_file() and samples.stat().st_size > 0
    if path.is_file() and has_samples:
        try:
            have = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e.msg}); delete it together with {SAMPLES}") from None
        diff = _diff(_comparable(have), want)
        if diff:
            raise ConfigError(f"{job.folder}: earlier samples were made with another protocol ({'; '.join(diff[:3])});"
                              " use another --out or delete that folder")
    elif has_samples:
        raise ConfigError(f"{samples}: exists without {PROTOCOL}; cannot tell how it was made (delete it)")
    job.folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {**want, **{k: header[k] for k in LABELS if k in header}})


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A protocol record without :data:`LABELS` (the same weights may be evaluated from another path or
    under another checkpoint label)."""
    return {k: v for k, v in record.items() if k not in LABELS}


def reuse_samples(job: BenchmarkJob, header: dict[str, Any], source: Path) -> tuple[bool, str]:
    """Copy ``source/<benchmark>/samples.jsonl`` into ``job.folder`` when ``source``'s ``protocol.json``
    equals this job's (model fingerprint, engine, dtype, chat template and sampling protocol; the
    :data:`LABELS` aside), replacing any samples there. Returns (copied, why) -- ``why`` is recorded.

    The same weights under the same protocol make the samples this job would make: vLLM's sample by
    sample (seeds are per question), the HF engine's in distribution (its random stream follows the
    batch layout, as on resume). Call after :func:`check_protocol`, before :func:`read_complete`.
    """
    src = source / job.name
    if not (src / SAMPLES).is_file() or not (src / PROTOCOL).is_file():
        return False, f"not reused: {src} has no {SAMPLES} with a {PROTOCOL}"
    try:
        have = json.loads((src / PROTOCOL).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        return False, f"not reused: {src / PROTOCOL} is not valid JSON ({e.msg})"
    want = _comparable({**header, "protocol": job.protocol.model_dump(mode="json")})
    diff = _diff(_comparable(have), want)
    if diff:
        return False, f"not reused: other weights or protocol ({'; '.join(diff[:2])})"
    dest = job.folder / SAMPLES
    tmp = dest.with_name(dest.name + ".tmp")
    job.folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / SAMPLES, tmp)
    os.replace(tmp, dest)
    return True, (f"reused {src / SAMPLES}: same model weights (sha256 {header['model_sha256'][:12]}…) "
                  "and protocol")


def _diff(have: dict[str, Any], want: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(have) | set(want)):
        a, b = have.get(key), want.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def append_samples(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Append records to ``samples.jsonl``; they are on disk when this returns."""
    append_jsonl(path, records, fsync=True)


def read_complete(path: Path, protocol: BenchmarkProtocol) -> dict[str, list[dict[str, Any]]]:
    """Records of the questions in ``path`` that have all k samples graded by every grader.

    Incomplete questions and a torn last line are dropped and the file is rewritten without them, so
    appending can continue. A bad line elsewhere is a DataFormatError naming the line.
    """
    if not path.is_file():
        return {}
    try:
        lines = read_jsonl_lines(path, torn_tail="drop")
    except JsonlError as e:
        raise DataFormatError(f"{e}; delete the file to start over") from None
    by_q: dict[str, dict[int, dict[str, Any]]] = {}
    for _, rec in lines:
        if _valid_record(rec, protocol):
            by_q.setdefault(rec["question_id"], {}).setdefault(rec["sample"], rec)
    done = {q: [s[j] for j in range(protocol.k)] for q, s in by_q.items() if set(s) == set(range(protocol.k))}
    write_jsonl(path, (rec for recs in done.values() for rec in recs))
    return done


def _valid_record(rec: dict[str, Any], p: BenchmarkProtocol) -> bool:
    v, s = rec.get("verdicts"), rec.get("status")
    return (isinstance(rec.get("question_id"), str) and isinstance(rec.get("sample"), int)
            and 0 <= rec["sample"] < p.k and isinstance(v, dict) and isinstance(s, dict)
            and all(isinstance(v.get(g), bool) and s.get(g) in STATUSES for g in p.graders)
            and isinstance(rec.get("n_tokens"), int) and rec.get("finish_reason") in FINISH_REASONS)
