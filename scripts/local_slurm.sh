#!/usr/bin/env bash
# A single-node Slurm cluster on this Debian machine, to try facebias's cluster path before a real cluster:
#   sudo scripts/local_slurm.sh start    # installs Debian's slurm-wlm, slurmdbd, munge, mariadb-server if missing
#   sudo scripts/local_slurm.sh stop
#   scripts/local_slurm.sh missing-packages   # the Debian packages `start` would install, one per line
# Runs without systemd: every daemon is started by hand. Accounting (slurmdbd on MariaDB) is on, because Hydra's
# submitit launcher learns that a job was cancelled from `sacct`. Jobs run as the submitting user; the one
# partition, "local", lets up to 4 jobs share each CPU core (memory is still a consumable resource), so several run
# at once on a small machine. KillWait is 10 s (FACEBIAS_SLURM_KILL_WAIT_S; Slurm's default is 30): submitit
# ignores the SIGTERM of `scancel`, so a cancelled job ends that long after it. Running `start` again is harmless:
# what already runs is left as it is (configuration changes need `stop` first).
set -euo pipefail

STATE=/var/lib/facebias-slurm
LOGS=/var/log/slurm
CLUSTER=facebias
DB_PASSWORD_FILE=$STATE/db_password
KILL_WAIT_S=${FACEBIAS_SLURM_KILL_WAIT_S:-10}

die() { echo "local_slurm.sh: $*" >&2; exit 1; }
say() { echo "local_slurm.sh: $*"; }

wait_for() {  # wait_for SECONDS WHAT COMMAND...: retry COMMAND every 0.5 s until it succeeds
  local limit=$1 what=$2; shift 2
  for _ in $(seq $((limit * 2))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  die "$what did not come up within ${limit} s (logs: $LOGS, /var/log/mysql)"
}

alive() {  # alive PIDFILE: the process named in PIDFILE runs
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

missing_packages() {  # the Debian packages of the cluster whose command is not installed, one per line
  for pair in slurmctld:slurm-wlm slurmdbd:slurmdbd munged:munge mariadbd:mariadb-server; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || echo "${pair#*:}"
  done
}

install_packages() {
  local missing
  mapfile -t missing < <(missing_packages)
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
}

start_munge() {
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 0755 /run/munge
  alive /run/munge/munged.pid && return 0
  [ -s /etc/munge/munge.key ] || runuser -u munge -- /usr/sbin/mungekey --create
  runuser -u munge -- /usr/sbin/munged
  wait_for 10 munged bash -c 'munge -n | unmunge'
}

start_mariadb() {
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  if ! alive /run/mysqld/mysqld.pid; then
    runuser -u mysql -- /usr/sbin/mariadbd --pid-file=/run/mysqld/mysqld.pid >>"$LOGS/mariadb.log" 2>&1 &
    wait_for 30 mariadb mariadb-admin ping
  fi
  [ -s "$DB_PASSWORD_FILE" ] || (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$DB_PASSWORD_FILE")
  mariadb <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$(cat "$DB_PASSWORD_FILE")';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$(cat "$DB_PASSWORD_FILE")';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL
}

write_configs() {
  local host node name
  host=$(hostname -s)
  # The node as slurmd sees it: another CPU layout makes slurmd say "Node reconfigured socket/core boundaries".
  node=$(slurmd -C | head -n 1)
  name=$(sed -E 's/^NodeName=([^ ]+).*/\1/' <<<"$node")
  mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d" "$LOGS"
  cat >/etc/slurm/slurm.conf <<CONF
# Written by facebias scripts/local_slurm.sh: a one-node test cluster.
ClusterName=$CLUSTER
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
MailProg=/bin/true
ReturnToService=2
KillWait=$KILL_WAIT_S
MinJobAge=60
$node
PartitionName=local Nodes=$name Default=YES MaxTime=INFINITE OverSubscribe=FORCE:4 State=UP
CONF
  (umask 077 && cat >/etc/slurm/slurmdbd.conf <<CONF
# Written by facebias scripts/local_slurm.sh.
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=/run/slurmdbd.pid
LogFile=$LOGS/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$(cat "$DB_PASSWORD_FILE")
StorageLoc=slurm_acct_db
CONF
)
}

start_slurm() {
  alive /run/slurmdbd.pid || slurmdbd
  wait_for 30 slurmdbd sacctmgr -n list cluster
  sacctmgr -n list cluster format=cluster | grep -qw "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
  alive /run/slurmctld.pid || slurmctld
  wait_for 30 slurmctld scontrol ping
  alive /run/slurmd.pid || slurmd
  wait_for 30 "the node" bash -c "sinfo -h -o %T | grep -qE '^(idle|mixed|allocated)'"
}

start() {
  [ "$(id -u)" -eq 0 ] || die "run it as root (it installs packages and starts system daemons)"
  install_packages
  mkdir -p "$STATE" "$LOGS"
  start_munge
  start_mariadb
  write_configs
  start_slurm
  say "Slurm cluster '$CLUSTER' is up: $(sinfo -h -o '%P %D node(s) %c CPUs %m MB %T')"
}

stop_pidfile() {  # stop_pidfile PIDFILE NAME: TERM the process, wait up to 15 s for it to go
  alive "$1" || return 0
  local pid
  pid=$(cat "$1")
  kill "$pid"
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  die "$2 (pid $pid) did not stop"
}

stop() {
  [ "$(id -u)" -eq 0 ] || die "run it as root"
  stop_pidfile /run/slurmd.pid slurmd
  stop_pidfile /run/slurmctld.pid slurmctld
  stop_pidfile /run/slurmdbd.pid slurmdbd
  stop_pidfile /run/mysqld/mysqld.pid mariadb
  stop_pidfile /run/munge/munged.pid munged
  say "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  missing-packages) missing_packages ;;
  *) die "usage: $0 start|stop|missing-packages" ;;
esac
