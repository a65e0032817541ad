"""Repository-wide guarantees: every test file runs, every Python file is linted, the import layers
hold, and no library file grows past a readable size.

pytest and ruff both skip folders named ``dist`` or ``build`` by default; a test folder with such a
name was once silently never run. These tests fail if any folder is skipped again.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MAX_LINES = 400


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


def _python_files(*folders: str) -> set[str]:
    return {str(p.relative_to(REPO)) for f in folders for p in (REPO / f).rglob("*.py")
            if "__pycache__" not in p.parts}


def test_every_test_file_is_collected():
    res = _run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"])
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    collected = {line.split("::")[0] for line in res.stdout.splitlines() if "::" in line}
    on_disk = {str(p.relative_to(REPO)) for p in (REPO / "tests").rglob("test_*.py")}
    assert on_disk, "no test files found"
    assert on_disk - collected == set(), "test files pytest does not collect"


def test_ruff_reads_every_python_file_and_is_clean():
    folders = ("src", "tests", "scripts")
    shown = _run([str(BIN / "ruff"), "check", "--show-files", *folders])
    read = {str(Path(line.strip()).resolve().relative_to(REPO)) for line in shown.stdout.splitlines()
            if line.strip().endswith(".py")}
    assert _python_files(*folders) - read == set(), "Python files ruff does not read"
    res = _run([str(BIN / "ruff"), "check", *folders])
    assert res.returncode == 0, res.stdout[-3000:]


def test_import_layers_and_no_cycles():
    res = _run([str(BIN / "lint-imports"), "--no-cache"])
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout


def test_no_library_file_over_400_lines():
    long = {f: n for f in _python_files("src/luffy")
            if (n := len((REPO / f).read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}, f"split these files (limit {MAX_LINES} lines)"
