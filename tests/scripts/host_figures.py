# What a jail can read of the host's own figures.
import os

MASKED = [
    "/proc/stat",
    "/proc/meminfo",
    "/proc/vmstat",
    "/proc/zoneinfo",
    "/proc/buddyinfo",
    "/proc/diskstats",
    "/proc/partitions",
    "/proc/swaps",
    "/proc/interrupts",
    "/proc/softirqs",
    "/proc/sys/kernel/random/boot_id",
]


def read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError as error:
        return f"unreadable: {error.strerror}"


def main():
    return {
        "files": {path: read(path) for path in MASKED},
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
    }
