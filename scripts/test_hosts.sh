#!/usr/bin/env bash
# make test-hosts: prove the service on other kinds of host, each one a user-mode-linux
# (UML) guest booted on this machine's own root, so no image and no KVM are needed.
#
#   HOSTS="cgroup-v2 no-cgroup small-no-cgroup"   which hosts (hosts/boot.sh lists them)
#   HOSTS_DURATION=60                              seconds of hostile load per host
#   HOSTS_PARALLEL=$(nproc)                        guests booted at once
#   HOSTS_GUEST_LIMIT=HOSTS_DURATION+300           seconds a guest may run before it is killed
#   HOSTS_RUN_DIR=/var/tmp/pyexec-test-hosts       where each run's logs and results go
#
# A UML guest has one CPU and keeps about one host core busy, so by default as many
# guests run at once as there are cores: more would slow each guest, and its limits
# and deadlines would measure the contention rather than the service. In each, the service starts the
# way `make run` starts it, then the check set and the load run inside the guest
# (hosts/guest.py); the results come back through files, and hosts/report.py prints
# one line per host and a short report. Exits non-zero when any host failed.
set -euo pipefail
cd "$(dirname "$0")/.."

hosts=${HOSTS:-cgroup-v2 no-cgroup small-no-cgroup}
duration=${HOSTS_DURATION:-60}
base=${HOSTS_RUN_DIR:-/var/tmp/pyexec-test-hosts}
parallel=${HOSTS_PARALLEL:-$(nproc)}

if [ "$(id -u)" != 0 ]; then
    echo "test-hosts: run as root (apt, and nsjail inside the guests)" >&2
    exit 1
fi
case $base in
    /tmp | /tmp/* | /run | /run/* | /dev/shm*)
        echo "test-hosts: HOSTS_RUN_DIR must not be under /tmp, /run or /dev/shm: each guest mounts its own there" >&2
        exit 1 ;;
esac
if ! command -v linux.uml >/dev/null; then
    echo "test-hosts: installing user-mode-linux"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq user-mode-linux >/dev/null
fi
scripts/setup.sh  # `make setup`: .venv and /opt/pyexec/sandbox, which the guests share

run_dir=$base/$(date +%Y%m%d-%H%M%S)
mkdir -p "$run_dir"
echo "test-hosts: $hosts; ${duration} s of load each; logs in $run_dir"
started=$(date +%s)
for host in $hosts; do
    while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || true; done
    hosts/boot.sh "$host" "$run_dir/$host" "$duration" &
done
wait
echo "test-hosts: guests done in $(($(date +%s) - started)) s"
exec .venv/bin/python hosts/report.py "$run_dir" $hosts
