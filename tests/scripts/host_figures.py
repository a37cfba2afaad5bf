# What a jail can read of the host's own figures.
import os

HOST_WIDE = [
    "/proc/cmdline",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/kallsyms",
    "/proc/loadavg",
    "/proc/uptime",
    "/proc/cpuinfo",
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
    "/proc/pressure/cpu",
    "/proc/mounts",
]


def read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError as error:
        return f"unreadable: {error.strerror}"


def main():
    return {
        "files": {path: read(path) for path in HOST_WIDE},
        "proc_entries": sorted(name for name in os.listdir("/proc") if not name.isdigit()),
        "own_status": read("/proc/self/status").split("\n", 1)[0],
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
    }
