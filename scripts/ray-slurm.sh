#!/usr/bin/env bash
# Run one command on a Ray cluster that spans the current Slurm allocation, then take the
# cluster down again (issue #6: multi-node jobs without a hand-written Ray bootstrap).
#
#   sbatch --nodes=2 --gpus-per-node=8 --cpus-per-gpu=8 --time=48:00:00 \
#       scripts/ray-slurm.sh python -m luffy train --config ... --out ...
#   srun --nodes=1 --ntasks=1 bash scripts/ray-slurm.sh <command>     # inside an allocation
#
# What it does, in order:
#   1. The Ray head starts on the node this script runs on ($SLURMD_NODENAME; for an sbatch
#      script that is the first node of $SLURM_JOB_NODELIST), so the command, which runs here
#      too, is a driver on a Ray node.
#   2. Every other node of $SLURM_JOB_NODELIST gets one Ray worker node through
#      `srun --nodes=1 --ntasks=1 --overlap -w <node> ray start --address=<head> --block`
#      (inherited SLURM_* step settings are dropped so the step takes that node's share of the
#      job: all its CPUs and, unless told otherwise, all its GPUs).
#   3. It waits until the cluster counts one live Ray node per Slurm node (error naming the
#      worker nodes that exited, or the count, after $LUFFY_RAY_WAIT_SECONDS).
#   4. It exports RAY_ADDRESS=<head ip>:<port> and runs the command; the command's exit status
#      is the script's.
#   5. On exit, on a failing command and on SIGTERM/SIGINT/SIGHUP (scancel, a time limit,
#      Ctrl-C) it stops the command, the worker steps and the head: TERM to each (Ray's
#      `start --block` and srun stop their own children), then KILL to whatever is left of
#      their process trees after $LUFFY_RAY_STOP_SECONDS.
#
# Settings (environment):
#   LUFFY_RAY_PORT          GCS port of the head (default 20000 + job id mod 10000)
#   LUFFY_RAY_HEAD_IP       address the workers reach the head at (default: the node name's
#                           IPv4 address from getent)
#   LUFFY_RAY_WAIT_SECONDS  how long all nodes may take to join (default 300)
#   LUFFY_RAY_STOP_SECONDS  grace between TERM and KILL when stopping (default 15)
#   LUFFY_RAY_PYTHON        the Python that has ray installed (default: python on PATH);
#                           the `ray` command is taken from the same folder
#   LUFFY_RAY_START_ARGS    extra `ray start` flags for every node, e.g. "--object-store-memory=1000000000"
#   RAY_AUTH_MODE           unset: token authentication with a fresh token per job (RAY_AUTH_TOKEN is
#                           exported to every node and the command); set: Ray's own handling
#   RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S  default 0 here: no node drain on SIGTERM (Ray's own
#                           default waits up to 30 s, for a GCS that scancel has already stopped)
#
# Tested on one machine only (tests/workflow/test_slurm_real.py: a real single-node Slurm, one
# Ray node, through sbatch, through an srun step as the Snakemake jobstep runs it, and scancel;
# tests/workflow/test_ray_launcher.py: three "nodes" with stand-ins for srun, scontrol and
# ray that check the commands, the RAY_ADDRESS handed over and the shutdown paths). Not tested
# here: several real nodes (the srun placement, the head address reached over a network) and
# GPUs (Ray's GPU count comes from the CUDA_VISIBLE_DEVICES that Slurm sets per step).
set -uo pipefail

say() { echo "ray-slurm: $*" >&2; }
die() { say "error: $1"; exit "${2:-1}"; }

if (( $# == 0 )); then
  echo "usage: ray-slurm.sh COMMAND [ARG...]   (inside a Slurm allocation)" >&2
  exit 2
fi
[[ -n "${SLURM_JOB_ID:-}" && -n "${SLURM_JOB_NODELIST:-}" ]] ||
  die "not inside a Slurm allocation (SLURM_JOB_ID / SLURM_JOB_NODELIST unset): submit it with sbatch, or run it under salloc/srun" 2

PY="${LUFFY_RAY_PYTHON:-python}"
PY_PATH="$(command -v "$PY")" || die "'$PY' not found on PATH (set LUFFY_RAY_PYTHON)" 2
RAY="$(dirname "$PY_PATH")/ray"
[[ -x "$RAY" ]] || die "no 'ray' command next to $PY_PATH: install Ray into that environment (pip install -e '.[ray]')" 2
WAIT_S="${LUFFY_RAY_WAIT_SECONDS:-300}"
STOP_S="${LUFFY_RAY_STOP_SECONDS:-15}"
PORT="${LUFFY_RAY_PORT:-$(( 20000 + SLURM_JOB_ID % 10000 ))}"
read -r -a START_ARGS <<<"${LUFFY_RAY_START_ARGS:-}"

mapfile -t NODES < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
(( ${#NODES[@]} > 0 )) || die "scontrol show hostnames '$SLURM_JOB_NODELIST' listed no nodes"
HEAD="${SLURMD_NODENAME:-${NODES[0]}}"
WORKERS=()
found=0
for n in "${NODES[@]}"; do
  if [[ "$n" == "$HEAD" ]]; then found=1; else WORKERS+=("$n"); fi
done
(( found )) || die "this node ($HEAD) is not in the allocation's node list (${NODES[*]})"
HEAD_IP="${LUFFY_RAY_HEAD_IP:-$(getent ahostsv4 "$HEAD" | awk 'NR == 1 { print $1 }')}"
[[ -n "$HEAD_IP" ]] || die "cannot resolve the head node '$HEAD' to an IPv4 address (set LUFFY_RAY_HEAD_IP)"
ADDRESS="$HEAD_IP:$PORT"
# Ray >= 2.5x turns token authentication on for a new cluster and reads the token from
# ~/.ray/auth_token unless told otherwise; one fresh token per job, handed to the head, the
# worker steps (srun passes the environment on) and the command, keeps jobs apart.
if [[ -z "${RAY_AUTH_MODE:-}" ]]; then
  export RAY_AUTH_MODE=token
  RAY_AUTH_TOKEN="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
  export RAY_AUTH_TOKEN
fi
# The cluster goes away as a whole: no node drain on SIGTERM.
export RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="${RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S:-0}"

# ------------------------------------------------------------------------------ shutdown
HEAD_PID=""
CMD_PID=""
WORKER_PIDS=()

descendants() {  # the given pids and all their descendants, from one ps snapshot
  ps -e -o pid=,ppid= | awk -v roots="$*" '
    { parent[$1] = $2 }
    END {
      n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1
      do { grew = 0
           for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; grew = 1 }
      } while (grew)
      for (p in keep) if (p in parent) print p
    }'
}

any_alive() {  # true while one of the given pids is a running (not zombie) process
  (( $# )) || return 1
  ps -o stat= -p "$(IFS=,; echo "$*")" 2>/dev/null | grep -qv '^Z'
}

stop_pids() {  # TERM the given pids (Ray's `start --block` and srun stop their own children),
  # then KILL whatever is left of their process trees after the grace time
  (( $# )) || return 0
  local pids
  mapfile -t pids < <(descendants "$@")
  (( ${#pids[@]} )) || return 0
  kill -TERM "$@" 2>/dev/null
  local t=$(( SECONDS + STOP_S ))
  while (( SECONDS < t )); do
    any_alive "${pids[@]}" || return 0
    sleep 0.2
  done
  kill -KILL "${pids[@]}" 2>/dev/null
  return 0
}

STOPPED=0
cleanup() {
  (( STOPPED )) && return 0
  STOPPED=1
  trap '' TERM INT HUP
  [[ -n "$CMD_PID" ]] && stop_pids "$CMD_PID"
  if (( ${#WORKER_PIDS[@]} )) || [[ -n "$HEAD_PID" ]]; then
    say "stopping the Ray cluster"
    # srun passes the TERM on to its remote task; the head's tree is its raylet, GCS and workers
    stop_pids "${WORKER_PIDS[@]}" ${HEAD_PID:+"$HEAD_PID"}
  fi
  wait 2>/dev/null
}
on_signal() {
  say "got SIG$1: stopping"
  cleanup
  exit "$2"
}
trap cleanup EXIT
trap 'on_signal TERM 143' TERM
trap 'on_signal INT 130' INT
trap 'on_signal HUP 129' HUP

# ------------------------------------------------------------------------------ start
# One CPU count per node as Slurm gave it to this job (Ray would otherwise count the whole node).
cpus_flag() { [[ -n "${SLURM_CPUS_ON_NODE:-}" ]] && echo "--num-cpus=$SLURM_CPUS_ON_NODE"; }

say "job $SLURM_JOB_ID: head on $HEAD ($ADDRESS), ${#WORKERS[@]} worker node(s)${WORKERS[*]:+: ${WORKERS[*]}}"
# shellcheck disable=SC2046
"$RAY" start --head --block --node-ip-address="$HEAD_IP" --port="$PORT" $(cpus_flag) \
  --include-dashboard=false --disable-usage-stats "${START_ARGS[@]}" >&2 &
HEAD_PID=$!

gcs_up() { (exec 3<>"/dev/tcp/$HEAD_IP/$PORT") 2>/dev/null; }
deadline=$(( SECONDS + WAIT_S ))
until gcs_up; do
  any_alive "$HEAD_PID" || { wait "$HEAD_PID"; die "the Ray head on $HEAD exited (rc $?) before it listened on $ADDRESS"; }
  (( SECONDS < deadline )) || die "the Ray head on $HEAD did not listen on $ADDRESS within $WAIT_S s"
  sleep 0.5
done

# Nested srun: keep only the allocation's identity, so step settings of an enclosing srun
# (tasks, CPUs per task, GPUs of a Snakemake jobstep) do not leak into the worker steps.
step_env=()
while IFS= read -r var; do
  case "$var" in
    SLURM_JOB_ID|SLURM_JOBID|SLURM_CLUSTER_NAME|SLURM_CONF|SLURM_SUBMIT_DIR|SLURM_SUBMIT_HOST) ;;
    SLURM_*|SRUN_*|SBATCH_*) step_env+=(-u "$var") ;;
  esac
done < <(compgen -e)
for node in "${WORKERS[@]}"; do
  # shellcheck disable=SC2016
  env "${step_env[@]}" srun --nodes=1 --ntasks=1 --overlap -w "$node" \
    bash -c 'exec "$0" start --address="$1" --block ${SLURM_CPUS_ON_NODE:+--num-cpus=$SLURM_CPUS_ON_NODE} \
      --disable-usage-stats "${@:2}"' "$RAY" "$ADDRESS" "${START_ARGS[@]}" >&2 &
  WORKER_PIDS+=($!)
done

# Wait until every node has a live raylet (one short-lived Ray driver polls the GCS).
"$PY" - "$ADDRESS" "${#NODES[@]}" "$WAIT_S" <<'EOF' &
import sys
import time

import ray

address, want, wait_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + wait_s
ray.init(address=address, logging_level="ERROR", log_to_driver=False)
alive = 0
while time.monotonic() < deadline:
    alive = sum(1 for n in ray.nodes() if n["Alive"])
    if alive >= want:
        break
    time.sleep(1.0)
ray.shutdown()
sys.exit(0 if alive >= want else 1)
EOF
WAITER=$!
while any_alive "$WAITER"; do
  for i in "${!WORKER_PIDS[@]}"; do
    if ! any_alive "${WORKER_PIDS[$i]}"; then
      wait "${WORKER_PIDS[$i]}"; rc=$?
      stop_pids "$WAITER"
      die "the Ray worker on node ${WORKERS[$i]} exited (rc $rc) before the cluster was complete"
    fi
  done
  any_alive "$HEAD_PID" || { stop_pids "$WAITER"; die "the Ray head on $HEAD exited before the cluster was complete"; }
  sleep 0.5
done
wait "$WAITER" ||
  die "the Ray cluster at $ADDRESS did not report ${#NODES[@]} live node(s) within $WAIT_S s (Slurm nodes: ${NODES[*]}; see the messages above)"
say "Ray cluster up: ${#NODES[@]} node(s) at $ADDRESS"

# ------------------------------------------------------------------------------ the command
export RAY_ADDRESS="$ADDRESS"
"$@" &
CMD_PID=$!
wait "$CMD_PID"
rc=$?
CMD_PID=""
say "command exited with status $rc"
exit "$rc"
