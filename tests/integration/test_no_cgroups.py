"""Without usable cgroups the jails fall back to rlimits: RLIMIT_AS for memory,
RLIMIT_NPROC for processes, RLIMIT_CPU per process, and /healthz says so.

A cgroup root with no controllers in it stands in for a host without cgroups; the
service is told not to mount a hierarchy of its own (PYEXEC_CGROUP_MOUNT=off), which it
would otherwise try as root with CAP_SYS_ADMIN, on this host's own /run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import pyexec.cgroups
from pyexec.api import Service
from pyexec.pool import RUNNING_NICE
from pyexec.spawn import REAPER
from tests.integration.host import JailCensus, jail_populations, jail_uids
from tests.support import answer_health, call, check_schema, script, wait_healthy

MAX_PIDS = 32


@pytest.fixture
def rlimit_service(
    make_service: Callable[..., Service], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Service:
    """A healthy service whose cgroup preparation found no controllers."""
    monkeypatch.setattr(pyexec.cgroups, "CGROUP_ROOT", tmp_path)
    service = make_service(
        PYEXEC_CGROUP_MOUNT="off",
        PYEXEC_POOL_SIZE="0",
        PYEXEC_MAX_PIDS=str(MAX_PIDS),
        PYEXEC_TIMEOUT="3",
        PYEXEC_CPU_SECONDS="2",
    )
    assert service.executor.cgroups.mode == "none"
    assert service.executor.cgroups.source == "none"
    wait_healthy(service)
    return service


def test_healthz_reports_no_cgroups(rlimit_service: Service) -> None:
    answer = answer_health(rlimit_service)
    assert answer.status == 200
    check_schema(200, answer.body, "health")
    assert answer.body["cgroups"] == "none"
    assert answer.body["cgroup_source"] == "none"


def test_hello_runs_without_cgroups(rlimit_service: Service) -> None:
    answer = call(rlimit_service, {"script": script("hello")})
    assert (answer.status, answer.body["result"]) == (200, {"hello": "world"})
    check_schema(200, answer.body)


def test_a_memory_bomb_meets_rlimit_as(rlimit_service: Service) -> None:
    answer = call(rlimit_service, {"script": script("memory_bomb_python")})
    assert answer.status == 400
    check_schema(400, answer.body)
    assert answer.body["kind"] == "memory_limit"
    assert answer.body["error"] == (
        "The script ran out of memory in main() (MemoryError). Raise memory_mb, up to 1024."
    )


def test_a_fork_bomb_is_held_to_rlimit_nproc_and_stopped_by_the_wall_clock(
    rlimit_service: Service,
) -> None:
    """RLIMIT_NPROC caps the bomb's processes. Nothing counts the CPU of a whole jail
    without a cgroup, and each process's RLIMIT_CPU is far from spent when the
    processes share the CPU, so the wall-clock limit is what ends it: timeout."""
    with JailCensus(jail_uids(rlimit_service.settings)) as census:
        answer = call(rlimit_service, {"script": script("fork_bomb")})
    assert answer.status == 400
    check_schema(400, answer.body)
    assert answer.body["kind"] == "timeout"
    namespace, peak = census.largest()
    assert MAX_PIDS // 2 < peak <= MAX_PIDS
    assert REAPER.wait_idle(timeout=30)
    assert jail_populations(jail_uids(rlimit_service.settings)).get(namespace, 0) == 0
    after = call(rlimit_service, {"script": script("hello")})
    assert (after.status, after.body["result"]) == (200, {"hello": "world"})


def test_healthz_says_how_each_limit_is_held_without_cgroups(rlimit_service: Service) -> None:
    answer = answer_health(rlimit_service)
    assert answer.body["limits"] == {
        "memory": "watchdog",
        "pids": "rlimit",
        "cpu_time": "rlimit",
        "cpu_share": "nice",
    }
    assert answer.body["jail_uids"] == "per_jail"
    assert answer.body["oom_priority"] is True


FORKED_HOGS = """\
import os, time

def main():
    children = []
    for _ in range(8):
        pid = os.fork()
        if pid == 0:
            hog = bytearray(64 * 1024 * 1024)  # within RLIMIT_AS, each on its own
            for index in range(0, len(hog), 4096):
                hog[index] = 1
            time.sleep(30)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    return "not stopped"
"""


def test_processes_that_together_pass_the_memory_limit_are_stopped_by_the_watchdog(
    rlimit_service: Service,
) -> None:
    """RLIMIT_AS holds each process, not the jail: 8 children of 64 MB each pass a
    256 MB jail's limit together; the watchdog sums their memory and stops the jail."""
    answer = call(rlimit_service, {"script": FORKED_HOGS})
    assert answer.status == 400
    check_schema(400, answer.body)
    assert answer.body["kind"] == "memory_limit"
    assert "processes together" in answer.body["error"]
    assert answer.body["usage"]["peak_memory_bytes"] > 256 * 1024 * 1024
    assert REAPER.wait_idle(timeout=30)
    after = call(rlimit_service, {"script": script("hello")})
    assert (after.status, after.body["result"]) == (200, {"hello": "world"})


MULTIPLIED = """\
import os, time

def main():
    children = []
    for _ in range(29):
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children.append(pid)
    time.sleep(1.0)  # several of the watchdog's polls
    undone = []
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 0)
        undone.append("nice")
    except PermissionError:
        pass
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        undone.append("policy")
    except PermissionError:
        pass
    return {
        "nice": sorted({os.getpriority(os.PRIO_PROCESS, pid) for pid in [0, *children]}),
        "idle": all(
            os.sched_getscheduler(pid) == os.SCHED_IDLE for pid in [0, *children]
        ),
        "undone": undone,
    }
"""


def test_a_jail_that_multiplies_is_lowered_to_about_one_process_share(
    rlimit_service: Service,
) -> None:
    """Without cgroups the CPU is shared per thread: a jail of 30 processes would get
    30 shares. The watchdog lowers every one of them to nice 19 and SCHED_IDLE, and
    the script can undo neither."""
    answer = call(rlimit_service, {"script": MULTIPLIED})
    assert answer.status == 200, answer.body
    assert answer.body["result"] == {"nice": [19], "idle": True, "undone": []}


def test_a_jail_of_one_keeps_its_running_priority(rlimit_service: Service) -> None:
    source = "import os\ndef main():\n    return os.getpriority(os.PRIO_PROCESS, 0)\n"
    answer = call(rlimit_service, {"script": source})
    assert (answer.status, answer.body["result"]) == (200, RUNNING_NICE)


def test_too_little_address_space_for_the_preimports_is_diagnosed_not_run(
    make_service: Callable[..., Service], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without cgroups memory_mb is RLIMIT_AS; numpy and pandas reserve more address
    space than 64 MB, so the heavy jails die importing them. The self-test fails, the
    answer says why and what to change, and nothing runs."""
    monkeypatch.setattr(pyexec.cgroups, "CGROUP_ROOT", tmp_path)
    service = make_service(PYEXEC_CGROUP_MOUNT="off", PYEXEC_MEMORY_MB="64")
    health = service.executor.wait_health(timeout=120)
    assert health is not None
    assert not health.ok
    assert "runner stderr:" in health.reason
    answer = call(service, {"script": script("hello")})
    assert answer.status == 503
    check_schema(503, answer.body)
    assert answer.body["kind"] == "sandbox_unavailable"
    assert "ran out of memory while it started" in answer.body["error"]
    assert "PYEXEC_MEMORY_MB" in answer.body["error"]
