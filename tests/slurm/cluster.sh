#!/usr/bin/env bash
# A real single-node Slurm (slurmctld + slurmd + munged) on loopback, everything under one directory,
# for the integration tests. Run as root (SlurmUser=root; no systemd, no /etc files touched).
#
#   cluster.sh start DIR [N]    munge key, munged, slurm.conf, gres.conf, slurmctld, slurmd; waits until
#                               the node is idle and a job runs, then prints `export SLURM_CONF=DIR/slurm.conf`.
#                               N=2: two nodes, sparky-n1 and sparky-n2 (Slurm lists them as sparky-n[1-2]), each its own slurmd (`slurmd -N NAME`)
#                               on its own Port, both on 127.0.0.1 (Debian builds Slurm with MULTIPLE_SLURMD:
#                               `scontrol show config` lists it); a job spanning both waits until both are idle.
#   cluster.sh stop DIR         kills slurmd, slurmctld, munged by their pid files (TERM, wait, KILL), and the
#                               slurmstepd processes of this cluster's slurmd with the job processes under them
#   cluster.sh stop-ctld DIR    stops only slurmctld (its state stays in DIR/state)
#   cluster.sh start-ctld DIR   starts slurmctld again on the same config and state; jobs are still known
#
# Jobs get 2 fake GPUs (gres gpu, files DIR/gpu0 and DIR/gpu1). Memory is enforced without cgroups by
# jobacct_gather/linux with OverMemoryKill (polled every second). Accounting is off (sacct does not work).
set -euo pipefail

usage() { echo "usage: $0 start DIR [1|2] | stop|start-ctld|stop-ctld DIR" >&2; exit 2; }
[ $# -eq 2 ] || { [ $# -eq 3 ] && [ "$1" = start ] && [[ "$3" =~ ^[12]$ ]]; } || usage
cmd=$1
NODES=${3:-1}
case "$cmd" in start|stop|start-ctld|stop-ctld) ;; *) usage ;; esac
[ -n "$2" ] || usage

if [ "$cmd" = start ]; then mkdir -p "$2"; fi
[ -d "$2" ] || { echo "cluster.sh: $2 is not a directory" >&2; exit 2; }
DIR=$(cd "$2" && pwd -P)
CONF=$DIR/slurm.conf
# slurmd passes its environment on to slurmstepd; this marks the step daemons of this cluster for `stop`.
MARK="SPARKY_SLURM_CLUSTER=$DIR"

log() { echo "cluster.sh: $*" >&2; }

# alive PID NAME: the process exists and is NAME (a recycled pid is someone else's).
alive() {
  local comm
  [ -n "$1" ] && comm=$(cat "/proc/$1/comm" 2>/dev/null) && [ "$comm" = "$2" ]
}

# stop_pid PIDFILE NAME: TERM, up to 10 s, then KILL; the pid file goes.
stop_pid() {
  local file=$1 name=$2 pid i
  pid=$(cat "$file" 2>/dev/null || true)
  pid=${pid//[^0-9]/}
  if alive "$pid" "$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do alive "$pid" "$name" || break; sleep 0.1; done
    if alive "$pid" "$name"; then
      log "$name ($pid) still running after 10 s; KILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do alive "$pid" "$name" || break; sleep 0.1; done
    fi
  fi
  rm -f "$file"
}

# Pids of this cluster's slurmstepd processes (found by the mark slurmd passes down), then every
# process under them (the job scripts and what they started).
step_tree() {
  local pid ppid comm steps=() all=() i=0
  local -A parent=()
  while read -r pid ppid comm; do
    parent[$pid]=$ppid
    [ "$comm" = slurmstepd ] || continue
    { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -qxF "$MARK" && steps+=("$pid")
  done < <(ps -e -o pid=,ppid=,comm=)
  [ ${#steps[@]} -gt 0 ] || return 0
  all=("${steps[@]}")
  while [ $i -lt ${#all[@]} ]; do   # breadth first over the children
    for pid in "${!parent[@]}"; do
      [ "${parent[$pid]}" = "${all[$i]}" ] && all+=("$pid")
    done
    i=$((i + 1))
  done
  echo "${all[@]}"
}

stop_steps() {
  local pids p left i
  pids=$(step_tree)
  [ -n "$pids" ] || return 0
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  for ((i = 0; i < 30; i++)); do
    left=
    for p in $pids; do kill -0 "$p" 2>/dev/null && left+=" $p"; done
    [ -n "$left" ] || return 0
    sleep 0.1
  done
  # shellcheck disable=SC2086
  kill -KILL $left 2>/dev/null || true
}

tails() {
  local f
  for f in "$DIR"/log/slurmctld.log "$DIR"/log/slurmctld.stderr "$DIR"/log/slurmd*.log "$DIR"/log/slurmd.stderr "$DIR"/log/munged.log "$DIR"/log/munged.stderr; do
    [ -s "$f" ] || continue
    echo "---- tail $f" >&2
    tail -n 30 "$f" >&2
  done
}

start_ctld() {
  # Default start recovers jobs from StateSaveLocation (first start: there is none yet).
  SLURM_CONF=$CONF setsid slurmctld -f "$CONF" </dev/null >>"$DIR/log/slurmctld.stderr" 2>&1
}

# wait_ctld SECONDS: slurmctld answers.
wait_ctld() {
  local end=$((SECONDS + $1))
  while [ $SECONDS -lt $end ]; do
    SLURM_CONF=$CONF scontrol ping 2>/dev/null | grep -q 'is UP' && return 0
    sleep 0.2
  done
  return 1
}

fail() {
  log "$*"
  tails
  "$0" stop "$DIR" >/dev/null 2>&1 || true
  exit 1
}

free_port() {
  local p i
  for ((i = 0; i < 50; i++)); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    [ "$p" != "${1:-}" ] || continue
    [ -z "$(ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null)" ] && { echo "$p"; return 0; }
  done
  return 1
}

case "$cmd" in
stop)
  for f in "$DIR"/run/slurmd*.pid; do [ -e "$f" ] && stop_pid "$f" slurmd & done
  stop_pid "$DIR/run/slurmctld.pid" slurmctld &
  wait
  stop_steps   # job steps outlive slurmd: end them and the job processes under them
  stop_pid "$DIR/run/munged.pid" munged
  exit 0
  ;;
stop-ctld)
  stop_pid "$DIR/run/slurmctld.pid" slurmctld
  exit 0
  ;;
start-ctld)
  [ -f "$CONF" ] || { log "no $CONF: run start first"; exit 1; }
  if alive "$(cat "$DIR/run/slurmctld.pid" 2>/dev/null || true)" slurmctld; then log "slurmctld already running"; exit 0; fi
  start_ctld || { log "slurmctld did not start"; tails; exit 1; }
  wait_ctld 30 || { log "slurmctld not answering in 30 s"; tails; exit 1; }
  echo "export SLURM_CONF=$CONF"
  exit 0
  ;;
esac

# ---- start
for b in munged mungekey slurmctld slurmd sbatch sinfo scontrol ss; do
  command -v "$b" >/dev/null || { log "$b not found (apt-get install slurm-wlm munge; test.sh does it as root)"; exit 1; }
done
[ "$(id -u)" = 0 ] || { log "must run as root (SlurmUser=root)"; exit 1; }
if [ -f "$DIR/run/slurmctld.pid" ] || [ -f "$DIR/run/munged.pid" ]; then
  "$0" stop "$DIR" >/dev/null 2>&1 || true   # a previous run in the same dir
fi
rm -rf "$DIR/state" "$DIR/spool" "$DIR/run" "$DIR/log" "$DIR/munge"
mkdir -p "$DIR/state" "$DIR/spool" "$DIR/run" "$DIR/log" "$DIR/munge"
# munged refuses a key, socket or log in a directory others can write to (sticky dirs like /tmp are
# fine), and a socket in a directory not everyone can enter.
chmod 0755 "$DIR" "$DIR/munge"
chmod 0700 "$DIR/run" "$DIR/log"

host=$(hostname -s)
key=$DIR/munge/munge.key
if ! mungekey --create --keyfile="$key" 2>/dev/null; then
  dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
fi
chmod 0400 "$key"

munge_opts=(--socket="$DIR/munge/munge.socket" --key-file="$key" --pid-file="$DIR/run/munged.pid"
  --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed")
if ! err=$(munged "${munge_opts[@]}" </dev/null 2>&1); then
  # munged checks the whole path: a parent of DIR writable by group or others (and not sticky) fails
  # it. Only for that, start it with --force (its check is about other users; this is a test box).
  case "$err" in
    *ermission*|*nsecure*|*writable*)
      log "munged: $err; retrying with --force"
      munged "${munge_opts[@]}" --force </dev/null >>"$DIR/log/munged.stderr" 2>&1 || fail "munged did not start" ;;
    *) fail "munged did not start: $err" ;;
  esac
fi
for ((i = 0; i < 50; i++)); do [ -S "$DIR/munge/munge.socket" ] && break; sleep 0.1; done
[ -S "$DIR/munge/munge.socket" ] || fail "munged socket did not appear"

ctld_port=$(free_port) || fail "no free port"
d_port=$(free_port "$ctld_port") || fail "no free port"
if [ "$NODES" = 2 ]; then
  b_port=$(free_port "$ctld_port") || fail "no free port"
  [ "$b_port" != "$d_port" ] || b_port=$(free_port "$d_port") || fail "no free port"
  names=(sparky-n1 sparky-n2)
else
  names=("$host")
fi
cpus=$(nproc)
mem=$(awk '/^MemTotal:/ { m = int($2 / 1024) - 1024; if (m < 512) m = int($2 / 1024 / 2); print m }' /proc/meminfo)
# Fake GPUs: slurmd ignores a gres File that is not a character or block device (and then sets no
# CUDA_VISIBLE_DEVICES / SLURM_JOB_GPUS), so these are /dev/null's (1,3); a link to /dev/null if mknod fails.
for g in gpu0 gpu1; do
  rm -f "$DIR/$g"
  mknod -m 0666 "$DIR/$g" c 1 3 2>/dev/null || ln -s /dev/null "$DIR/$g"
done

cat >"$CONF" <<EOF
# generated by tests/slurm/cluster.sh for the integration tests
ClusterName=sparkytest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool$([ "$NODES" = 2 ] && echo '/%n')
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd$([ "$NODES" = 2 ] && echo '-%n').pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd$([ "$NODES" = 2 ] && echo '-%n').log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
GresTypes=gpu
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
MessageTimeout=10
SlurmctldTimeout=30
SlurmdTimeout=60
MinJobAge=300
KillWait=2
OverTimeLimit=0
ReturnToService=2
InactiveLimit=0
MpiDefault=none
MailProg=/bin/true
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
$(if [ "$NODES" = 2 ]; then
  echo "NodeName=sparky-n1 NodeHostname=$host NodeAddr=127.0.0.1 Port=$d_port CPUs=$cpus RealMemory=$mem Gres=gpu:2 State=UNKNOWN"
  echo "NodeName=sparky-n2 NodeHostname=$host NodeAddr=127.0.0.1 Port=$b_port CPUs=$cpus RealMemory=$mem Gres=gpu:2 State=UNKNOWN"
else
  echo "NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:2 State=UNKNOWN"
fi)
PartitionName=debug Default=YES Nodes=ALL MaxTime=INFINITE State=UP
# The replaced system's .env.cluster names DSPY_SLURM_PARTITION=gpu (tests/Sparky.IntegrationTests/Cli/EnvFileTests.cs).
PartitionName=gpu Nodes=ALL MaxTime=INFINITE State=UP
EOF
for n in "${names[@]}"; do echo "NodeName=$n Name=gpu File=$DIR/gpu[0-1]"; done >"$DIR/gres.conf"
chmod 0644 "$CONF" "$DIR/gres.conf"

export SLURM_CONF=$CONF
start_ctld || fail "slurmctld did not start"
wait_ctld 30 || fail "slurmctld not answering in 30 s"
for n in "${names[@]}"; do
  [ "$NODES" = 2 ] && mkdir -p "$DIR/spool/$n"
  env "$MARK" setsid slurmd -f "$CONF" -N "$n" </dev/null >>"$DIR/log/slurmd.stderr" 2>&1 || fail "slurmd -N $n did not start"
done

for n in "${names[@]}"; do
  end=$((SECONDS + 30)) state=
  while [ $SECONDS -lt $end ]; do
    state=$(sinfo -h -N -n "$n" -p debug -o '%T' 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.2
  done
  [ "$state" = idle ] || fail "node $n not idle in 30 s (state: ${state:-none})"
done

# A job really runs (munge credentials, slurmd launch, slurmstepd) before the cluster is handed out.
out=$(cd "$DIR" && timeout 30 sbatch --wait --nodes="$NODES" --job-name=cluster-probe --output=/dev/null --wrap true 2>&1) ||
  fail "probe job failed: $out"

echo "export SLURM_CONF=$CONF"
