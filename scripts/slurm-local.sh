#!/usr/bin/env bash
# A throwaway single-node Slurm cluster with two fake GPUs, to run the workflow's Slurm profile
# for real on one Debian/Ubuntu machine (CI, a laptop VM). Needs root; installs the Debian
# packages slurmctld, slurmd, slurm-client and munge when they are missing.
#
#   bash scripts/slurm-local.sh start    # configure, start, wait until the node is idle
#   bash scripts/slurm-local.sh stop     # stop the daemons this script started (by pid file)
#   bash scripts/slurm-local.sh status
#
# There is no accounting daemon, so `sacct` does not work: run the profile with
#   LUFFY_SLURM_STATUS_COMMAND=squeue LUFFY_SLURM_INIT_SECONDS=2 snakemake --profile slurm ...
# (squeue keeps finished jobs for MinJobAge = 300 s, which the plugin's squeue mode needs).
# State, logs and pid files live in $LUFFY_SLURM_STATE (default /tmp/luffy-slurm), wiped on start.
set -euo pipefail

STATE="${LUFFY_SLURM_STATE:-/tmp/luffy-slurm}"
CONF_DIR=/etc/slurm

running() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_packages() {
  local need=()
  for pkg in slurmctld slurmd slurm-client munge; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if (( ${#need[@]} )); then
    echo "slurm-local: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

start_munge() {
  [[ -s /etc/munge/munge.key ]] || head -c 1024 /dev/urandom > /etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  install -d -o munge -g munge -m 755 /run/munge
  if ! running /run/munge/munged.pid; then
    runuser -u munge -- /usr/sbin/munged
    touch "$STATE/munged.ours"  # stop only a munged this script started
  fi
  for _ in $(seq 50); do munge -n | unmunge >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "slurm-local: munge does not answer" >&2; return 1
}

write_config() {
  # node shape from the hardware; leave 2 GiB (or 10 %) of the memory to the system
  local hw cpus sockets cores threads mem
  hw="$(slurmd -C | head -1)"
  field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$hw"; }
  cpus="$(field CPUs)"; sockets="$(field SocketsPerBoard)"; cores="$(field CoresPerSocket)"
  threads="$(field ThreadsPerCore)"; mem="$(field RealMemory)"
  mem=$(( mem > 4096 ? mem - 2048 : mem * 9 / 10 ))
  mkdir -p "$CONF_DIR" "$STATE/gpu"
  # fake GPUs: character devices (like /dev/null), so slurmd sets CUDA_VISIBLE_DEVICES in jobs
  for i in 0 1; do [[ -c "$STATE/gpu/$i" ]] || mknod "$STATE/gpu/$i" c 1 3; done
  cat > "$CONF_DIR/gres.conf" <<EOF
AutoDetect=off
NodeName=localhost Name=gpu File=$STATE/gpu/[0-1]
EOF
  cat > "$CONF_DIR/slurm.conf" <<EOF
# written by scripts/slurm-local.sh
ClusterName=luffy-local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
MinJobAge=300
DefMemPerCPU=1000
GresTypes=gpu
NodeName=localhost CPUs=$cpus Sockets=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
  if running "$STATE/slurmctld.pid" && running "$STATE/slurmd.pid"; then
    echo "slurm-local: already running"; sinfo; return 0
  fi
  install_packages
  rm -rf "$STATE"
  mkdir -p "$STATE/ctld" "$STATE/d"
  start_munge
  write_config
  slurmctld
  slurmd -N localhost
  local state="" t=$((SECONDS + 30))
  while (( SECONDS < t )); do
    sleep 0.5
    for d in slurmctld slurmd; do
      if [[ -s "$STATE/$d.pid" ]] && ! running "$STATE/$d.pid"; then
        echo "slurm-local: $d died; log tail:" >&2; tail -n 20 "$STATE/$d.log" >&2; return 1
      fi
    done
    state="$(timeout 5 sinfo -h -N -o %t 2>/dev/null | head -1 || true)"
    [[ "$state" =~ ^(idle|mix|alloc)$ ]] && { sinfo; return 0; }
  done
  echo "slurm-local: node state '${state:-unknown}' after 30 s; logs in $STATE" >&2
  return 1
}

stop() {
  for d in slurmd slurmctld; do
    local pidfile="$STATE/$d.pid"
    if running "$pidfile"; then
      local pid; pid="$(cat "$pidfile")"
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
      echo "slurm-local: stopped $d ($pid)"
    fi
  done
  if [[ -f "$STATE/munged.ours" ]] && running /run/munge/munged.pid; then
    kill "$(cat /run/munge/munged.pid)" && rm -f "$STATE/munged.ours" && echo "slurm-local: stopped munged"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if running "$STATE/slurmctld.pid"; then sinfo; else echo "slurm-local: not running"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
