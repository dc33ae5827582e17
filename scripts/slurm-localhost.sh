#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for testing the SLURM profile (profiles/slurm).
#
#   scripts/slurm-localhost.sh start    # install (apt) if needed, start munged/slurmctld/slurmd; idempotent
#   scripts/slurm-localhost.sh env      # print `export SLURM_CONF=...` for this cluster
#   scripts/slurm-localhost.sh status   # sinfo
#   scripts/slurm-localhost.sh stop     # stop the daemons this script started (by their pid files)
#   scripts/slurm-localhost.sh running  # exit 0 if both daemons of this cluster are up
#
# Stop it when done: a /etc/slurm/slurm.conf whose controller is down makes every `scontrol` wait ~9 s, and
# snakemake-executor-plugin-slurm runs `scontrol show config` whenever Snakemake starts (any executor).
#
# Needs root and Debian's slurm-wlm + munge (installed with apt when missing). Exit status 3 means
# "SLURM cannot be set up here" (not root, no apt); tests skip with that reason. The configuration and
# state live in $VEM_SLURM_DIR (default /tmp/vem-slurm); /etc/slurm/slurm.conf becomes a link to our
# slurm.conf (job steps started by srun inside a job look there, whatever SLURM_CONF says) - unless a
# slurm.conf that is not ours exists, which is never touched (exit 3).
set -euo pipefail

DIR="${VEM_SLURM_DIR:-/tmp/vem-slurm}"
CONF="$DIR/slurm.conf"
HOST="$(hostname -s)"

die3() { echo "slurm-localhost: $*" >&2; exit 3; }

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_pkgs() {
    command -v slurmctld >/dev/null && command -v munged >/dev/null && return 0
    [[ $(id -u) -eq 0 ]] || die3 "slurm-wlm/munge are not installed and we are not root"
    command -v apt-get >/dev/null || die3 "slurm-wlm/munge are not installed and apt-get is not available"
    echo "slurm-localhost: installing slurm-wlm munge (apt)" >&2
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null; then
        apt-get update >/dev/null || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null \
            || die3 "apt-get install slurm-wlm munge failed"
    fi
}

write_conf() {
    local cpus mem
    cpus="$(nproc)"
    mem="$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.85}' /proc/meminfo)"
    mkdir -p "$DIR"/{state,spool,log}
    cat > "$CONF.tmp" <<EOF
# written by scripts/slurm-localhost.sh
ClusterName=vemlocal
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MinJobAge=300
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
NodeName=$HOST CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
    link_conf
}

link_conf() {
    local etc=/etc/slurm/slurm.conf
    if [[ -e "$etc" || -L "$etc" ]]; then
        if [[ "$(readlink -f "$etc")" == "$(readlink -f "$CONF")" ]] || grep -q "written by scripts/slurm-localhost.sh" "$etc"; then
            ln -sfn "$CONF" "$etc"
            return 0
        fi
        die3 "$etc exists and is not ours; not touching a real cluster's configuration"
    fi
    mkdir -p /etc/slurm
    ln -s "$CONF" "$etc"
}

start() {
    [[ $(id -u) -eq 0 ]] || die3 "needs root to run slurmctld/slurmd (uid $(id -u))"
    install_pkgs
    getent hosts "$HOST" >/dev/null || echo "127.0.0.1 $HOST" >> /etc/hosts
    if [[ ! -s /etc/munge/munge.key ]]; then
        install -d -o munge -g munge -m 0700 /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    install -d -o munge -g munge /run/munge
    if ! alive /run/munge/munged.pid; then
        runuser -u munge -- /usr/sbin/munged
        touch "$DIR.munged-started" 2>/dev/null || true
    fi
    if alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid"; then
        link_conf
        echo "slurm-localhost: already running ($CONF)" >&2
    else
        write_conf
        alive "$DIR/slurmctld.pid" || slurmctld -f "$CONF"
        alive "$DIR/slurmd.pid" || slurmd -f "$CONF"
    fi
    for _ in $(seq 1 60); do
        state="$(SLURM_CONF="$CONF" sinfo -h -o %t 2>/dev/null | head -1 || true)"
        case "$state" in
            idle|mix|alloc) echo "slurm-localhost: node $HOST $state ($CONF)" >&2; return 0 ;;
            down*|drain*) SLURM_CONF="$CONF" scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
        esac
        sleep 0.5
    done
    die3 "the node did not become idle in 30 s; see $DIR/log"
}

stop() {
    for d in slurmd slurmctld; do
        if alive "$DIR/$d.pid"; then kill "$(cat "$DIR/$d.pid")"; fi
    done
    for _ in $(seq 1 40); do
        alive "$DIR/slurmd.pid" || alive "$DIR/slurmctld.pid" || break
        sleep 0.25
    done
    if [[ -L /etc/slurm/slurm.conf && "$(readlink -f /etc/slurm/slurm.conf)" == "$(readlink -f "$CONF")" ]]; then
        rm -f /etc/slurm/slurm.conf
    fi
    if [[ -f "$DIR.munged-started" ]] && alive /run/munge/munged.pid; then
        kill "$(cat /run/munge/munged.pid)" || true
        rm -f "$DIR.munged-started"
    fi
    echo "slurm-localhost: stopped" >&2
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    status) SLURM_CONF="$CONF" sinfo ;;
    running) alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid" ;;
    *) echo "usage: $0 start|stop|status|env|running" >&2; exit 2 ;;
esac
