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
# there lands on the host; only RUN_DIR (on the host's disk, not under /tmp) carries
# the results out. The harness is shielded from the guest's OOM killer; the service
# is not (hosts/service.py starts it with oom_score_adj 0).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN_DIR=$1 MODE=$2 DURATION=$3

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm
[ "$MODE" = v2 ] && mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
echo -1000 > /proc/self/oom_score_adj

cd "$(dirname "$0")/.." || exit 1
echo "guest: $(uname -r), $(nproc) CPU, mode $MODE, load ${DURATION}s" > "$RUN_DIR/guest.log"
.venv/bin/python hosts/guest.py "$RUN_DIR" "$MODE" "$DURATION" >> "$RUN_DIR/guest.log" 2>&1
echo "guest.py exited with $?" >> "$RUN_DIR/guest.log"

sync
echo o > /proc/sysrq-trigger  # power off; init must not exit before it happens
sleep 60
