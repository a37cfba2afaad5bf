#!/bin/sh
# PID 1 of a UML guest booted on the host's own root (hostfs): make the host kind
# asked for, run hosts/guest.py in it, power off.
#
#   init=hosts/guest_init.sh -- RUN_DIR MODE DURATION
#
# MODE v2: cgroup2 on /sys/fs/cgroup (the kernel has cgroup_no_v1=all, so no v1);
# MODE own and none: no cgroup mounted at all, as in a container without a writable
# hierarchy (own: the service may mount its own; none: it is told not to, hosts/guest.py).
# /tmp, /run and /dev/shm get the guest's own tmpfs, so that nothing the guest writes
# there lands on the host (a checkout under one of them is bound back in); only RUN_DIR
# (on the host's disk, not under /tmp) carries the results out. The harness is shielded from the guest's OOM killer; the service
# is not (hosts/service.py starts it with oom_score_adj 0).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN_DIR=$1 MODE=$2 DURATION=$3

PROJECT=$(cd "$(dirname "$0")/.." && pwd)

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /run
# A checkout under /tmp (a CI's, say) would vanish under the guest's own tmpfs: it is
# bound aside first, then back at its own path, where its .venv expects to be.
mkdir -p /run/hosts-project && mount --bind "$PROJECT" /run/hosts-project
mount -t tmpfs tmpfs /tmp
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm
if [ ! -d "$PROJECT/hosts" ]; then
    mkdir -p "$PROJECT" && mount --bind /run/hosts-project "$PROJECT"
fi
[ "$MODE" = v2 ] && mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
echo -1000 > /proc/self/oom_score_adj

cd "$PROJECT" || exit 1
echo "guest: $(uname -r), $(nproc) CPU, mode $MODE, load ${DURATION}s" > "$RUN_DIR/guest.log"
.venv/bin/python hosts/guest.py "$RUN_DIR" "$MODE" "$DURATION" >> "$RUN_DIR/guest.log" 2>&1
echo "guest.py exited with $?" >> "$RUN_DIR/guest.log"

sync
echo o > /proc/sysrq-trigger  # power off; init must not exit before it happens
sleep 60
