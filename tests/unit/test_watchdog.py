"""The no-cgroup watchdog's pure parts: the priority a jail's threads get as they
multiply, and the walk of a process tree (of this test's own children)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from pyexec import watchdog

# CFS's weights for nice 10..19, and SCHED_IDLE's (kernel/sched/core.c).
WEIGHT = {10: 110, 11: 87, 12: 70, 13: 56, 14: 45, 15: 36, 16: 29, 17: 23, 18: 18, 19: 15}
IDLE_WEIGHT = 3


def _jail_weight(threads: int, base: int = 10) -> int:
    nice, idle = watchdog.share_priority(base, threads)
    return threads * (IDLE_WEIGHT if idle else WEIGHT[nice])


def test_a_jail_of_one_keeps_its_base_priority() -> None:
    assert watchdog.share_priority(10, 1) == (10, False)
    assert watchdog.share_priority(10, 0) == (10, False)


@pytest.mark.parametrize("threads", [2, 3, 5, 7])
def test_a_few_threads_together_weigh_about_one_at_the_base(threads: int) -> None:
    assert _jail_weight(threads) <= WEIGHT[10] * 1.25


def test_priority_falls_as_threads_multiply_and_never_rises() -> None:
    seen = [watchdog.share_priority(10, n) for n in range(1, 200)]
    nices = [nice for nice, _ in seen]
    assert nices == sorted(nices)
    assert max(nices) == watchdog.LOWEST_NICE
    assert [idle for _, idle in seen] == [n > watchdog.IDLE_ABOVE_THREADS for n in range(1, 200)]


def test_a_hundred_threads_weigh_a_few_single_threads_not_a_hundred() -> None:
    assert _jail_weight(100) <= 3 * WEIGHT[10]
    assert _jail_weight(100) < 100 * WEIGHT[10] / 30


def test_the_base_is_kept_within_nice_range() -> None:
    assert watchdog.share_priority(19, 5) == (19, False)
    assert watchdog.share_priority(0, 2) == (4, False)


def test_the_tree_holds_a_process_its_children_and_their_threads() -> None:
    child_code = (
        "import os, threading, time\n"
        "threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
        "pid = os.fork()\n"
        "time.sleep(30)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", child_code])
    try:
        deadline = time.monotonic() + 10
        tree = watchdog.jail_tree(parent.pid)
        while len(tree.processes) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
            tree = watchdog.jail_tree(parent.pid)
        assert tree.processes[0] == parent.pid
        assert len(tree.processes) == 2
        assert set(tree.processes) <= set(tree.threads)
        assert len(tree.threads) >= 3  # the parent's extra thread is counted
    finally:
        for pid in watchdog.jail_tree(parent.pid).processes[1:]:
            os.kill(pid, 9)
        parent.kill()
        parent.wait()


def test_a_gone_process_is_an_empty_tree_of_one_with_no_memory() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    tree = watchdog.jail_tree(process.pid)
    assert tree.threads == []
    assert watchdog.resident_bytes(tree.processes) == 0
