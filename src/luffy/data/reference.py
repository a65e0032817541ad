"""The reference repository's data files (method §0, §3.4, appendix "files copied"): where they are
downloaded from, the sha256 / git blob pins that identify them, and the download cache.

Used by the paper data folder (:mod:`luffy.data.paper`, ``valid.parquet``) and by the benchmark
loaders (:mod:`luffy.eval.benchmarks`, the evaluation parquets). Downloads go to
``$LUFFY_CACHE/eval`` (default ``~/.cache/luffy/eval``) and are checked against the pins before use.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

from luffy.data.schema import DataFormatError

REFERENCE_URL = "https://raw.githubusercontent.com/ElliottYan/LUFFY/main/data/{file}"
#: sha256 of the reference files (spec appendix "files copied").
REFERENCE_SHA256 = {
    "valid.parquet": "3acbd7f5872207c97aa3fe0d40662ec53f33bca19b438ee88a1ecf910051a723",
    "valid.all.parquet": "92503399b914212d2e3d85839882bc1376a0111652fec0dcb722e86307e97617",
    "valid.arc_c.parquet": "7c3d1df8f11ade8be258ee0b0c7bbd6ac9a8e535dee3dbb3b5410f974f0d8fe5",
    "valid.gpqa.parquet": "55bde3943eeb6906d6d569d0ab882638c2f395a716ab5fa1fa20a186e722e58b",
}
MMLU_PRO_FILE = "valid.mmlu_pro.parquet"
MMLU_PRO_BLOB = "48cd2b38bf2690f5ebfda3695a23a188d472c6b6"  # git blob id in the reference tree (method §0)


class BenchmarkDataMissing(FileNotFoundError):
    """A benchmark's data file is not available; the message says where to put it."""


def cache_root(cache_dir: str | Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("LUFFY_CACHE", Path.home() / ".cache" / "luffy")) / "eval"


def fetch_reference_file(name: str, cache_dir: str | Path | None = None, *, url: str | None = None) -> Path:
    """Download reference file ``name`` (once) into the cache and check its sha256 (spec appendix).

    ``url`` defaults to :data:`REFERENCE_URL` (or ``$LUFFY_EVAL_URL``, a template with ``{file}``).
    """
    if name not in REFERENCE_SHA256:
        raise ValueError(f"no known download for {name!r}; known: {sorted(REFERENCE_SHA256)}")
    dest = cache_root(cache_dir) / name
    want = REFERENCE_SHA256[name]
    if dest.is_file() and _sha256(dest) == want:
        return dest
    url = url or os.environ.get("LUFFY_EVAL_URL", REFERENCE_URL).format(file=name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, suffix=".part", delete=False) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as resp:
                shutil.copyfileobj(resp, tmp)
        except OSError as e:
            os.unlink(tmp.name)
            raise BenchmarkDataMissing(f"{name}: download from {url} failed ({e}); pass --data instead") from None
    got = _sha256(Path(tmp.name))
    if got != want:
        os.unlink(tmp.name)
        raise DataFormatError(f"{name}: downloaded from {url} has sha256 {got[:12]}…, expected {want[:12]}…")
    os.replace(tmp.name, dest)
    return dest


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git_blob_id(path: str | Path) -> str:
    """``git hash-object`` of a file (to check a copy of the missing MMLU-Pro parquet, method §0)."""
    data = Path(path).read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
