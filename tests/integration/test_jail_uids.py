"""Each jail runs as an outer uid and gid of its own (pyexec/jail_ids.py), so the
kernel's per-user budgets are per jail; PYEXEC_JAIL_UIDS=shared maps them all to
65534. Checked from the host's /proc on real jails, pooled and running."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from pyexec.api import Service
from pyexec.jail_ids import JAIL_ID_BASE, JAIL_ID_COUNT, JAIL_IDS
from pyexec.spawn import REAPER
from tests.support import answer_health, call, wait_healthy, wait_until

JAIL_RANGE = range(JAIL_ID_BASE, JAIL_ID_BASE + JAIL_ID_COUNT)

WHO_AM_I = """\
import os, time

def main():
    time.sleep(1.5)
    return [os.getuid(), os.getgid(), os.geteuid()]
"""


def _ids(status_text: str, key: str) -> set[int]:
    for line in status_text.splitlines():
        if line.startswith(key):
            return {int(value) for value in line.split()[1:]}
    return set()


def outer_ids_by_namespace(ids: range) -> dict[str, set[tuple[int, int]]]:
    """For each pid namespace with processes of ``ids``: their (uid, gid) pairs."""
    found: dict[str, set[tuple[int, int]]] = {}
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            status = (pid_dir / "status").read_text()
            namespace = (pid_dir / "ns" / "pid").readlink().name
        except OSError:
            continue
        uids, gids = _ids(status, "Uid:"), _ids(status, "Gid:")
        if len(uids) == 1 and uids <= set(ids):
            found.setdefault(namespace, set()).add((min(uids), min(gids)))
    return found


def test_every_pooled_jail_has_an_outer_uid_and_gid_of_its_own(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(PYEXEC_LIGHT_POOL_SIZE="3", PYEXEC_POOL_SIZE="1")
    wait_healthy(service)
    wait_until(lambda: len(outer_ids_by_namespace(JAIL_RANGE)) >= 4, "4 pooled jails")
    jails = outer_ids_by_namespace(JAIL_RANGE)
    assert all(len(pairs) == 1 for pairs in jails.values()), jails
    pairs = [next(iter(found)) for found in jails.values()]
    assert all(uid == gid for uid, gid in pairs)
    assert len({uid for uid, _ in pairs}) == len(pairs)  # no two jails share one
    assert not outer_ids_by_namespace(range(65534, 65535))


def test_running_jails_are_nobody_inside_and_distinct_outside(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(PYEXEC_POOL_SIZE="0")
    wait_healthy(service)
    answers = []

    def run() -> None:
        answers.append(call(service, {"script": WHO_AM_I}))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [(answer.status, answer.body["result"]) for answer in answers] == [
        (200, [65534, 65534, 65534])
    ] * 3


def test_ids_are_given_back_once_the_jails_are_reaped(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(PYEXEC_LIGHT_POOL_SIZE="2", PYEXEC_POOL_SIZE="1")
    wait_healthy(service)
    pools = service.executor.pools
    wait_until(lambda: pools.idle_counts()["light"] == 2, "a full light pool")
    jail, pooled = pools.acquire("def main():\n    return 1\n")
    assert pooled
    handed_out = [jail.outer_id, *(idle.outer_id for idle in pools.light.ready)]
    held = [outer_id for outer_id in handed_out if outer_id is not None]
    assert len(held) == 2
    jail.close()
    service.executor.shutdown(grace_seconds=0)
    assert REAPER.wait_idle(timeout=30)
    assert [outer_id for outer_id in held if JAIL_IDS.holds(outer_id)] == []


def test_shared_ids_map_every_jail_to_65534_and_healthz_says_so(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(
        PYEXEC_JAIL_UIDS="shared", PYEXEC_LIGHT_POOL_SIZE="2", PYEXEC_POOL_SIZE="1"
    )
    wait_healthy(service)
    assert answer_health(service).body["jail_uids"] == "shared"
    answer = call(service, {"script": WHO_AM_I})
    assert (answer.status, answer.body["result"]) == (200, [65534, 65534, 65534])
    wait_until(lambda: len(outer_ids_by_namespace(range(65534, 65535))) >= 2, "2 shared jails")


GREEDY = """\
import fcntl, os, time

def main():
    held = []
    while True:
        try:
            read_end, write_end = os.pipe()
        except OSError:
            return "out of fds before the pipe budget"
        held += [read_end, write_end]
        try:
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 1024 * 1024)
        except PermissionError:
            break  # this uid's pipe-user-pages-soft is spent
    time.sleep(8)
    return len(held) // 2
"""

ONE_BIG_PIPE = """\
import fcntl, os

def main():
    read_end, write_end = os.pipe()
    try:
        return fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 1024 * 1024)
    except PermissionError:
        return "EPERM"
"""


def _pipe_fds(pid_dir: Path) -> int:
    try:
        return sum(os.readlink(fd).startswith("pipe:") for fd in (pid_dir / "fd").iterdir())
    except OSError:
        return 0


def _a_jail_holds_many_pipes(ids: range) -> bool:
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            uids = _ids((pid_dir / "status").read_text(), "Uid:")
        except OSError:
            continue
        if len(uids) == 1 and uids <= set(ids) and _pipe_fds(pid_dir) >= 100:
            return True
    return False


@pytest.mark.parametrize(
    ("mode", "ids", "second_jail_gets"),
    [("per_jail", JAIL_RANGE, 1024 * 1024), ("shared", range(65534, 65535), "EPERM")],
)
def test_one_jail_spending_its_pipe_budget_leaves_another_jail_its_own(
    make_service: Callable[..., Service], mode: str, ids: range, second_jail_gets: object
) -> None:
    """The kernel counts pipe buffer pages per user (pipe-user-pages-soft). A jail
    that grows pipes to 1 MiB until the kernel refuses spends its uid's budget: with
    an outer uid per jail, another jail still gets a 1 MiB pipe; with one shared
    uid (shown for contrast) it is refused."""
    soft_pages = int(Path("/proc/sys/fs/pipe-user-pages-soft").read_text())
    if not 0 < soft_pages <= 100 * 256:  # 100 pipes of 1 MiB: within RLIMIT_NOFILE
        pytest.skip(f"pipe-user-pages-soft is {soft_pages}: a jail cannot spend it")
    service = make_service(PYEXEC_JAIL_UIDS=mode, PYEXEC_POOL_SIZE="0")
    wait_healthy(service)
    greedy: list[object] = []
    thread = threading.Thread(target=lambda: greedy.append(call(service, {"script": GREEDY})))
    thread.start()
    try:
        wait_until(lambda: _a_jail_holds_many_pipes(ids), "the greedy jail's pipes")
        second = call(service, {"script": ONE_BIG_PIPE})
    finally:
        thread.join()
    assert (second.status, second.body["result"]) == (200, second_jail_gets)
    answer = greedy[0]
    assert isinstance(answer, type(second))
    assert answer.status == 200
    assert answer.body["result"] >= 16  # it held at least 16 MiB of pipes
