"""The paper-scale data folder (method §2, §3.1, §3.4, §5.1): what ``luffy fetch-data`` writes.

``fetch_paper_data(train_id, complement_id, eval_dir, out)`` writes into ``out``:

* ``openr1.parquet`` -- the training prompts with their DeepSeek-R1 traces
  (``Elliott/Openr1-Math-46k-8192``, split ``train``), row by row and column by column as the hub
  holds them, like the reference's ``data/prepare_train.py`` (method §3.1). Every row must carry a
  trace (``target``), since LUFFY's off-policy half needs one per prompt.
* ``openr1.complement.parquet`` -- the held-out prompts of the SFT->RL baseline
  (``Elliott/Openr1-Math-48k-Complement``, method §2); traces are optional there.
* ``valid.parquet`` -- the in-training validation set (method §3.4, §5.1): a copy of
  ``eval_dir/valid.parquet`` when present, else the reference repo's file downloaded by
  :func:`luffy.data.reference.fetch_reference_file` (sha256-checked against the spec appendix).
* ``data.json`` -- written last, so its presence means the folder is complete: dataset ids, row
  counts, sha256 and source of each file.

Each parquet is written to a hidden temporary name, checked with :func:`luffy.data.loaders.load_rows`
(so the trainer can read it) and then renamed into place.

Deviations: the hub datasets are read with ``datasets.load_dataset`` (an optional dependency);
a local ``valid.parquet`` whose sha256 differs from the reference is accepted with a warning on
stderr and ``matches_reference: false`` in ``data.json`` (it may be a deliberate variant).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from luffy.data.loaders import load_rows
from luffy.data.reference import REFERENCE_SHA256, REFERENCE_URL, fetch_reference_file
from luffy.data.schema import DataFormatError

TRAIN_FILE = "openr1.parquet"
COMPLEMENT_FILE = "openr1.complement.parquet"
VALID_FILE = "valid.parquet"
INFO_FILE = "data.json"


class PaperDataUnavailable(FileNotFoundError):
    """A dataset or file of the paper data could not be obtained; the message names it and why."""


def fetch_paper_data(
    train_id: str,
    complement_id: str,
    eval_dir: str | Path,
    out: str | Path,
    *,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Write the paper data folder ``out`` (see the module docstring); returns ``data.json``'s content."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / INFO_FILE).unlink(missing_ok=True)  # a stale marker must not vouch for new files
    files = {
        "val": write_valid(Path(eval_dir), out / VALID_FILE, cache_dir=cache_dir),
        "train": write_hub_split(train_id, out / TRAIN_FILE, require_trace=True),
        "train_rl": write_hub_split(complement_id, out / COMPLEMENT_FILE, require_trace=False),
    }
    info = {
        "spec": "§2, §3.1, §3.4",
        "train_dataset": train_id,
        "complement_dataset": complement_id,
        "files": files,
    }
    _write_atomic(
        out / INFO_FILE, lambda tmp: tmp.write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    )
    return info


def write_hub_split(hub_id: str, dest: Path, *, split: str = "train", require_trace: bool) -> dict[str, Any]:
    """Save split ``split`` of hub dataset ``hub_id`` unchanged as the parquet ``dest`` (OpenR1 columns).

    ``require_trace``: every row must have a non-empty ``target`` (training data, method §3.1).
    """
    records = _load_hub_records(hub_id, split)
    if not records:
        raise DataFormatError(f"{hub_id}[{split}]: the dataset has no rows")
    try:
        table = pa.Table.from_pylist(records)
    except (pa.ArrowException, TypeError, ValueError) as e:
        raise DataFormatError(f"{hub_id}[{split}]: rows do not form one table ({_one_line(e)})") from None
    del records
    missing = [
        c
        for c in ("prompt", "reward_model", *(["target"] if require_trace else []))
        if c not in table.column_names
    ]
    if missing:
        raise DataFormatError(
            f"{hub_id}[{split}]: missing column(s) {missing}; expected the OpenR1 layout "
            "(data_source, prompt, target, ability, reward_model, extra_info; method §3.1)"
        )

    def write(tmp: Path) -> None:
        pq.write_table(table, tmp)
        rows = _check_rows(tmp, f"{hub_id}[{split}]")
        if require_trace:
            bare = next((i for i, r in enumerate(rows) if not r.traces), None)
            if bare is not None:
                raise DataFormatError(
                    f"{hub_id}[{split}]: row {bare} has no trace in 'target'; "
                    "training rows need one (method §3.1)"
                )

    _write_atomic(dest, write)
    print(f"fetch-data: {dest.name}: {table.num_rows} rows from {hub_id}[{split}]", file=sys.stderr)
    return {
        "file": dest.name,
        "source": f"hub:{hub_id}",
        "split": split,
        "rows": table.num_rows,
        **_file_facts(dest),
    }


def write_valid(eval_dir: Path, dest: Path, *, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Copy ``eval_dir/valid.parquet`` to ``dest``, or download the reference file when it is absent."""
    local = eval_dir / VALID_FILE
    if local.is_file():
        src, source = local, str(local)
    else:
        url = os.environ.get("LUFFY_EVAL_URL", REFERENCE_URL).format(file=VALID_FILE)
        print(f"fetch-data: {local} not found; downloading {url}", file=sys.stderr)
        try:
            src = fetch_reference_file(VALID_FILE, cache_dir, url=url)
        except (OSError, DataFormatError) as e:
            cause = e.__context__ or e  # the network error itself, when fetch_reference_file wrapped one
            raise PaperDataUnavailable(
                f"{VALID_FILE}: not in --eval-dir {eval_dir} and the download from {url} failed "
                f"({_one_line(cause)}); put the file at {local}"
            ) from None
        source = url

    def copy(tmp: Path) -> None:
        shutil.copyfile(src, tmp)
        _check_rows(tmp, str(src))

    _write_atomic(dest, copy)
    facts = _file_facts(dest)
    want = REFERENCE_SHA256[VALID_FILE]
    if facts["sha256"] != want:
        print(
            f"fetch-data: warning: {src} has sha256 {facts['sha256'][:12]}…, not the reference's {want[:12]}… "
            "(spec appendix); using it anyway",
            file=sys.stderr,
        )
    rows = pq.ParquetFile(dest).metadata.num_rows
    return {
        "file": dest.name,
        "source": source,
        "rows": rows,
        **facts,
        "reference_sha256": want,
        "matches_reference": facts["sha256"] == want,
    }


# ------------------------------------------------------------------------------------- helpers


def _load_hub_records(hub_id: str, split: str) -> list[dict[str, Any]]:
    try:
        datasets = importlib.import_module("datasets")
    except ImportError:
        raise PaperDataUnavailable(
            f"loading {hub_id!r} from the Hugging Face Hub needs the 'datasets' package: pip install datasets"
        ) from None
    try:
        ds = datasets.load_dataset(hub_id, split=split)
        return [dict(rec) for rec in ds]
    except Exception as e:  # noqa: BLE001 -- hub/network/cache errors come in many types; report one line
        raise PaperDataUnavailable(
            f"{hub_id}[{split}]: cannot load from the Hugging Face Hub ({type(e).__name__}: {_one_line(e)})"
        ) from None


def _check_rows(path: Path, name: str) -> list[Any]:
    """``load_rows`` on the just-written file, with errors naming the dataset instead of the temp file."""
    try:
        return load_rows(path, fmt="openr1")
    except DataFormatError as e:
        raise DataFormatError(str(e).replace(str(path), name)) from None


def _write_atomic(dest: Path, write: Any) -> None:
    """Call ``write(tmp)`` on a hidden sibling of ``dest`` (same suffix), then rename it to ``dest``."""
    tmp = dest.with_name(f".{dest.stem}.tmp{dest.suffix}")
    try:
        write(tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _file_facts(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300]
