#!/usr/bin/env bash
# Boot one host kind in user-mode-linux and wait for it to power off (bounded).
#
#   hosts/boot.sh HOST RUN_DIR DURATION
#
# HOST is one of the kinds below. The guest runs on the host's own root (hostfs), so
# it sees this checkout, its .venv and /opt/pyexec/sandbox as they are. The UML
# kernel's console goes to RUN_DIR/console.log, never to the terminal. The guest
# writes RUN_DIR/result.json itself; this script adds RUN_DIR/boot.txt (how the
# kernel ended, how long it took, what it left on the host).
set -uo pipefail
cd "$(dirname "$0")/.."
host=$1 run_dir=$2 duration=$3

case $host in
    cgroup-v2) mem=3G mode=v2 ;;        # cgroup v2 only
    no-cgroup) mem=3G mode=own ;;       # none mounted: the service mounts its own
    small-no-cgroup) mem=1G mode=none ;; # ~1 GiB, none mounted, PYEXEC_CGROUP_MOUNT=off
    *) echo "boot: unknown host $host" >&2; exit 2 ;;
esac
# Boot, service start, the check set (~1 min) and the drain after the load (up to
# the 60 s a request may take) come on top of the load itself.
limit=${HOSTS_GUEST_LIMIT:-$((${duration%.*} + 300))}
mkdir -p "$run_dir"

started=$(date +%s)
# timeout runs UML in a process group of its own and signals all of it: UML's
# helper processes (one per guest address space) go with the kernel.
timeout --kill-after=10 "$limit" linux.uml \
    mem="$mem" root=/dev/root rootfstype=hostfs rootflags=/ rw \
    cgroup_no_v1=all con=null con0=fd:0,fd:1 \
    umid="pyexec-$host" uml_dir="$run_dir" \
    init="$PWD/hosts/guest_init.sh" -- "$run_dir" "$mode" "$duration" \
    </dev/null >"$run_dir/console.log" 2>&1
rc=$?
ended=$(date +%s)
sleep 1
# Anything of this run's UML still there is ours: end it by its pid.
left=$(pgrep -f "umid=pyexec-$host uml_dir=$run_dir" | tr '\n' ' ')
for pid in $left; do kill -KILL "$pid" 2>/dev/null; done
{
    echo "mem=$mem mode=$mode"
    echo "exit=$rc"  # 124: killed by the timeout
    echo "limit=$limit"
    echo "seconds=$((ended - started))"
    echo "left_on_host=${left}"
} >"$run_dir/boot.txt"
