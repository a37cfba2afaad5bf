"""Holding a jail without cgroups: its memory and its CPU share, read from /proc.

With cgroups the kernel holds both for the whole jail. Without them RLIMIT_AS holds
each process, not the jail, and the scheduler shares the CPU per process, so a jail
of 100 processes would get 100 times the CPU of a jail of one. The jail's poll
(``Jail._exchange``, every CPU_POLL_SECONDS) therefore walks the jail's process tree
and, here:

- sums its memory (PSS) so the jail can be stopped past its limit;
- lowers the priority of a jail's processes as they multiply, so that the jail as a
  whole weighs about what one process does: nice up to 19, then SCHED_IDLE.

A jailed process cannot undo either: raising a nice value or leaving SCHED_IDLE needs
CAP_SYS_NICE in the host's user namespace or an RLIMIT_NICE above 0, and jails have
neither. What this does not guarantee (docs/operations.md): between polls new
processes run at their parent's priority, and a jail's total weight is bounded, not
equal to one process's (100 processes under SCHED_IDLE weigh about three
nice-10 processes).
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass

from pyexec.kernelfiles import read_kernel_file

# CFS weights: one nice level is a factor of about 1.25.
NICE_STEP = 1.25
LOWEST_NICE = 19
# Above this many threads a jail's threads go to SCHED_IDLE (weight 3, against 15
# at nice 19), where 100 of them weigh about 300: two or three processes at nice 10.
IDLE_ABOVE_THREADS = 20


@dataclass(frozen=True)
class JailTree:
    """A jail's processes and their threads (host ids) at one moment."""

    processes: list[int]
    # Every thread of those processes: nice values and scheduling policies are per
    # thread on Linux, and the scheduler weighs each thread.
    threads: list[int]


def jail_tree(init_pid: int) -> JailTree:
    """A jail's init and all its descendants, found through
    /proc/<pid>/task/<tid>/children (exited processes are simply absent)."""
    processes: list[int] = []
    threads: list[int] = []
    pending = [init_pid]
    seen: set[int] = set()
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        processes.append(pid)
        try:
            tasks = [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        threads.extend(tasks)
        for tid in tasks:
            try:
                children = read_kernel_file(f"/proc/{pid}/task/{tid}/children")
                pending.extend(int(child) for child in children.split())
            except OSError:
                continue
    return JailTree(processes, threads)


def resident_bytes(pids: list[int]) -> int:
    """The memory of these processes, each counted by its proportional share (PSS):
    summing RSS would count the pages a fork shares with its parent once per process,
    and stop legitimate multi-process scripts. Exited processes count 0."""
    return sum(_pss_bytes(pid) for pid in pids)


def _pss_bytes(pid: int) -> int:
    try:
        for line in read_kernel_file(f"/proc/{pid}/smaps_rollup").splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def share_priority(base_nice: int, threads: int) -> tuple[int, bool]:
    """The nice value and whether SCHED_IDLE, for each of a jail's ``threads`` when
    a jail of one runs at ``base_nice``: every factor of 1.25 in the thread count
    costs them all one nice level (so the jail's total weight stays about one
    thread's), up to 19; past IDLE_ABOVE_THREADS, SCHED_IDLE as well."""
    if threads <= 1:
        return base_nice, False
    levels = math.ceil(math.log(threads) / math.log(NICE_STEP))
    return min(LOWEST_NICE, base_nice + levels), threads > IDLE_ABOVE_THREADS


def hold_share(threads: list[int], base_nice: int) -> tuple[int, bool]:
    """Set every thread of a jail to its share's priority (see share_priority).

    Only ever lowers a priority: a thread already below it (the script reniced
    itself) keeps its own. Best effort per thread: one that exited meanwhile needs
    no priority. Returns the priority applied."""
    niceness, idle = share_priority(base_nice, len(threads))
    for pid in threads:
        with contextlib.suppress(OSError):
            if os.getpriority(os.PRIO_PROCESS, pid) < niceness:
                os.setpriority(os.PRIO_PROCESS, pid, niceness)
            if idle and os.sched_getscheduler(pid) != os.SCHED_IDLE:
                os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
    return niceness, idle
