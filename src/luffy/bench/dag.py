"""Wall time of a Snakemake run of the DAG, read from Snakemake's own log (no re-run).

Snakemake writes one log per invocation to ``.snakemake/log/<start>.snakemake.log``; each job
start is a ``[<ctime>]`` line followed by ``rule <name>:`` / ``localrule <name>:`` and a
``jobid: <k>`` line, each finish ``[<ctime>]`` then ``Finished jobid: <k> (Rule: <name>)``.
From that: the run's wall time (first to last timestamp; one-second resolution), per rule the
number of jobs and the summed and longest job wall times, and whether the run completed
(``(100%) done``). Dry runs (no timestamps) are skipped when the newest log is picked.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Any

from . import BenchError
from .common import envelope, finish

_TS = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_START = re.compile(r"^(?:local)?rule (\S+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_DONE = re.compile(r"^Finished jobid: (\d+) \(Rule: (\S+)\)$")


def parse_log(path: str | Path) -> dict[str, Any]:
    """Timings of one Snakemake log (see the module docstring); BenchError if it has no timestamps."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    now: _dt.datetime | None = None
    first = last = None
    starts: dict[str, tuple[str, _dt.datetime]] = {}
    pending_rule: str | None = None
    jobs: list[dict[str, Any]] = []
    complete = False
    for line in lines:
        m = _TS.match(line.strip())
        if m:
            now = _dt.datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
            first = first or now
            last = now
            continue
        if "(100%) done" in line:
            complete = True
        m = _START.match(line)
        if m and now is not None:
            pending_rule = m.group(1)
            continue
        m = _JOBID.match(line)
        if m and pending_rule is not None and now is not None:
            starts[m.group(1)] = (pending_rule, now)
            pending_rule = None
            continue
        m = _DONE.match(line.strip())
        if m and now is not None and m.group(1) in starts:
            rule, t0 = starts.pop(m.group(1))
            jobs.append({"rule": rule, "jobid": int(m.group(1)), "seconds": (now - t0).total_seconds()})
    if first is None or last is None:
        raise BenchError(f"{path}: no timestamps (a dry run or not a Snakemake log)")
    rules: dict[str, dict[str, float]] = {}
    for j in jobs:
        r = rules.setdefault(j["rule"], {"jobs": 0, "sum_s": 0.0, "max_s": 0.0})
        r["jobs"] += 1
        r["sum_s"] += j["seconds"]
        r["max_s"] = max(r["max_s"], j["seconds"])
    return {"log": path.name, "start": first.isoformat(), "end": last.isoformat(),
            "wall_s": (last - first).total_seconds(), "complete": complete, "jobs_finished": len(jobs),
            "jobs_unfinished": len(starts), "rules": rules}


def newest_run_log(folder: str | Path = ".snakemake/log") -> Path:
    """The newest log in ``folder`` that has timestamps (a real run, not a dry run)."""
    folder = Path(folder)
    logs = sorted(folder.glob("*.snakemake.log"), reverse=True)  # names start with the ISO start time
    for p in logs:
        if any(_TS.match(ln.strip()) for ln in p.read_text(encoding="utf-8", errors="replace").splitlines()):
            return p
    raise BenchError(f"{folder}: no Snakemake run log with timestamps (run `make run` first)")


def run(small: bool = False, *, log: str | None = None, log_dir: str = ".snakemake/log",
        target_min: float = 60.0) -> dict[str, Any]:
    path = Path(log) if log else newest_run_log(log_dir)
    if not path.is_file():
        raise BenchError(f"{path}: no such Snakemake log")
    rec = envelope("dag", small, {"log": str(path), "target_minutes": target_min})
    info = parse_log(path)
    info["wall_min"] = round(info["wall_s"] / 60, 2)
    info["meets_target"] = bool(info["complete"] and info["wall_min"] <= target_min)
    rec["results"] = info
    return finish(rec)
