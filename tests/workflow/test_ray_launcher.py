"""scripts/ray-slurm.sh on three "nodes" of one machine, with stand-ins for srun, scontrol and ray.

The stand-ins run every "remote" process locally and write what they were asked to do into a log:
``srun`` records its flags and environment and then runs its command, ``scontrol show hostnames``
expands the node list of the test, ``ray start`` registers its node (the head also listens on the
GCS port, which the launcher waits for) and records the SIGTERM that stops it, and a stand-in
``ray`` Python package answers the launcher's node count from the registrations. What this
checks: the head starts here, one srun step per other node, the command runs only after every
node joined and gets RAY_ADDRESS, the command's exit status is the launcher's, and the cluster is
stopped after success, after a failing command, on SIGTERM and when a worker never joins.

Not checked here (needs real hosts): srun placement on other machines, the head address over a
network, GPUs. tests/workflow/test_slurm_real.py runs the same script under a real single-node
Slurm with real Ray.
"""

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "scripts" / "ray-slurm.sh"

SRUN = """#!/usr/bin/env bash
# srun stand-in: log the flags and the SLURM_* environment, then run the command "on" the -w node
line=""
node=""
while [[ $# -gt 0 && "$1" == -* ]]; do
  if [[ "$1" == "-w" ]]; then node="$2"; line+="-w $2 "; shift 2; continue; fi
  line+="$1 "; shift
done
echo "$line| env: $(env | grep -E '^(SLURM|SRUN|SBATCH)_' | cut -d= -f1 | sort | tr '\\n' ' ')| auth: $RAY_AUTH_MODE $RAY_AUTH_TOKEN" >> "$STUB_DIR/srun.log"
export STUB_NODE="$node" SLURMD_NODENAME="$node"
exec "$@"
"""

SCONTROL = """#!/usr/bin/env bash
[[ "$1 $2" == "show hostnames" ]] || { echo "scontrol stand-in: unexpected $*" >&2; exit 9; }
for n in $STUB_NODES; do echo "$n"; done
"""

RAY = """#!{python}
# ray stand-in: `ray start` registers its node, the head listens on the GCS port; SIGTERM ends it.
import os, signal, socket, sys, time
stub = os.environ["STUB_DIR"]
node = os.environ.get("STUB_NODE") or "head"
args = sys.argv[1:]
def log(msg):
    with open(os.path.join(stub, "ray.log"), "a") as f:
        f.write(f"{{node}} {{msg}}\\n")
log("start " + " ".join(args))
with open(os.path.join(stub, "pids"), "a") as f:
    f.write(f"{{os.getpid()}}\\n")
if node == os.environ.get("STUB_FAIL_NODE"):
    sys.exit(7)
def stop(signum, frame):
    log("stopped by signal %d" % signum)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
if "--head" in args:
    port = int(next(a for a in args if a.startswith("--port=")).split("=")[1])
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen()
with open(os.path.join(stub, "nodes"), "a") as f:
    f.write(node + "\\n")
while True:
    time.sleep(0.1)
"""

RAY_PACKAGE = """import os
_stub = os.environ["STUB_DIR"]

def init(address=None, **kwargs):
    with open(os.path.join(_stub, "driver.log"), "a") as f:
        f.write(f"init {address}\\n")

def nodes():
    path = os.path.join(_stub, "nodes")
    names = open(path).read().split() if os.path.exists(path) else []
    return [{"NodeName": n, "Alive": True} for n in names]

def shutdown():
    pass
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def cluster(tmp_path):
    """Stand-in binaries and the environment of a 3-node job running its batch script on node1
    inside a Snakemake-like step (SLURM_NTASKS / SLURM_GPUS set, which must not reach the workers)."""
    bin_dir, pkg = tmp_path / "bin", tmp_path / "pkg" / "ray"
    bin_dir.mkdir()
    pkg.mkdir(parents=True)
    executable(bin_dir / "python", f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    executable(bin_dir / "ray", RAY.format(python=sys.executable))
    executable(bin_dir / "srun", SRUN)
    executable(bin_dir / "scontrol", SCONTROL)
    (pkg / "__init__.py").write_text(RAY_PACKAGE)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SRUN_", "SBATCH_", "RAY_"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", PYTHONPATH=str(tmp_path / "pkg"),
               STUB_DIR=str(tmp_path), STUB_NODES="node1 node2 node3", SLURM_JOB_ID="4242",
               SLURM_JOB_NODELIST="node[1-3]", SLURMD_NODENAME="node1", SLURM_NTASKS="1", SLURM_GPUS="16",
               LUFFY_RAY_HEAD_IP="127.0.0.1", LUFFY_RAY_PORT=str(port), LUFFY_RAY_WAIT_SECONDS="20",
               LUFFY_RAY_STOP_SECONDS="5")
    yield tmp_path, env, port
    # a launcher that failed to stop its stand-ins must not leave them running after the test
    pids = tmp_path / "pids"
    for pid in map(int, pids.read_text().split() if pids.is_file() else []):
        try:  # only if that pid is still one of this test's stand-ins
            if str(tmp_path).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError):
            pass


def launch(env, *cmd, timeout=40):
    return subprocess.run(["bash", str(LAUNCHER), *cmd], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def ray_log(stub: Path) -> list[str]:
    return (stub / "ray.log").read_text().splitlines()


def assert_cluster_stopped(stub: Path, nodes=("head", "node2", "node3")) -> None:
    lines = ray_log(stub)
    for node in nodes:
        assert f"{node} stopped by signal {int(signal.SIGTERM)}" in lines, lines
    for pid in map(int, (stub / "pids").read_text().split()):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_three_nodes_head_here_one_srun_per_other_node_and_stop_after_success(cluster):
    stub, env, port = cluster
    r = launch(env, "sh", "-c",
               'echo "address=$RAY_ADDRESS joined=$(wc -l < "$STUB_DIR/nodes") auth=$RAY_AUTH_MODE $RAY_AUTH_TOKEN"')
    assert r.returncode == 0, r.stderr
    # the command ran after all three nodes had joined, with the head's address and the job's token
    address, joined, mode, token = r.stdout.split()
    assert (address, joined, mode) == (f"address=127.0.0.1:{port}", "joined=3", "auth=token")
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    srun = (stub / "srun.log").read_text().splitlines()
    assert len(srun) == 2
    for line, node in zip(sorted(srun), ("node2", "node3"), strict=True):
        flags, step_env, auth = line.split("| ")
        assert f"-w {node}" in flags and "--nodes=1" in flags and "--ntasks=1" in flags
        # the enclosing step's task/GPU settings are dropped; the job id stays
        assert step_env.split() == ["env:", "SLURM_JOB_ID"]
        assert auth.split() == ["auth:", "token", token]  # every node shares the job's token
    starts = [line for line in ray_log(stub) if " start " in line]
    head = next(line for line in starts if line.startswith("head "))
    assert "--head" in head and f"--port={port}" in head and "--node-ip-address=127.0.0.1" in head
    workers = sorted(line.split()[0] for line in starts if f"--address=127.0.0.1:{port}" in line)
    assert workers == ["node2", "node3"]
    assert (stub / "driver.log").read_text().split() == ["init", f"127.0.0.1:{port}"]
    assert_cluster_stopped(stub)


def test_a_failing_command_gives_its_status_and_the_cluster_is_stopped(cluster):
    stub, env, _ = cluster
    r = launch(env, "sh", "-c", "exit 3")
    assert r.returncode == 3
    assert "command exited with status 3" in r.stderr
    assert_cluster_stopped(stub)


def test_sigterm_stops_the_command_and_the_cluster(cluster):
    stub, env, _ = cluster
    pidfile = stub / "cmd.pid"
    p = subprocess.Popen(["bash", str(LAUNCHER), "sh", "-c", f'echo $$ > "{pidfile}"; exec sleep 60'],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (pidfile.is_file() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline and p.poll() is None, p.communicate()
        time.sleep(0.1)
    cmd_pid = int(pidfile.read_text())
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 143, err
    assert "got SIGTERM" in err
    with pytest.raises(ProcessLookupError):
        os.kill(cmd_pid, 0)
    assert_cluster_stopped(stub)


def test_a_worker_that_never_joins_fails_fast_naming_its_node(cluster):
    stub, env, _ = cluster
    env["STUB_FAIL_NODE"] = "node3"
    t0 = time.monotonic()
    r = launch(env, "touch", str(stub / "command-ran"))
    assert r.returncode == 1
    assert "the Ray worker on node node3 exited (rc 7) before the cluster was complete" in r.stderr
    assert time.monotonic() - t0 < 15  # not the 20 s join deadline
    assert not (stub / "command-ran").exists()
    assert_cluster_stopped(stub, nodes=("head", "node2"))


def test_outside_an_allocation_or_without_a_command_it_refuses(cluster):
    _, env, _ = cluster
    r = launch({k: v for k, v in env.items() if k != "SLURM_JOB_NODELIST"}, "true")
    assert r.returncode == 2
    assert "ray-slurm: error: not inside a Slurm allocation (SLURM_JOB_ID / SLURM_JOB_NODELIST unset)" in r.stderr
    r = launch(env)
    assert r.returncode == 2 and r.stderr.startswith("usage: ray-slurm.sh COMMAND")


def test_missing_ray_is_named(cluster):
    stub, env, _ = cluster
    (stub / "bin" / "ray").unlink()
    r = launch(env, "true")
    assert r.returncode == 2
    assert f"no 'ray' command next to {stub / 'bin' / 'python'}" in r.stderr
