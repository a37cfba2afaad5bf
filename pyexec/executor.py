"""Run one script in a fresh jail; know whether the jail works at all; shut down cleanly.

The executor refuses to run anything until a real sandboxed run (the self-test)
has passed, and never runs a script outside the jail. Admission (who may run now)
is ``pyexec.admission``'s; the pool of ready jails is ``pyexec.pool``'s. Failures
the client is told about are raised as ``pyexec.errors`` exceptions.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from pyexec.admission import Admission, Ticket
from pyexec.answers import Outcome
from pyexec.cgroups import CONTROLLERS, CgroupSupport, prepare_cgroups
from pyexec.errors import (
    JailStartError,
    JailStartTimeout,
    Overloaded,
    SandboxStarting,
    SandboxUnavailable,
    ShuttingDown,
)
from pyexec.jail import Jail
from pyexec.jail_ids import JAIL_ID_BASE, JAIL_ID_COUNT, SHARED_ID
from pyexec.nsjail_config import load_isolation_facts
from pyexec.nsjail_log import diagnose
from pyexec.outcome import interpret
from pyexec.payload import Payload
from pyexec.pool import JailPools
from pyexec.settings import Limits, Settings
from pyexec.spawn import REAPER, dies_with_service, lower_own_oom_score

log = logging.getLogger("pyexec")

# A real run that also proves the seccomp filter covers the x32 ABI: an x32 getpid
# must meet EPERM (a kernel without x32 would say ENOSYS, and one with it would run
# the call, if neither the built nsjail's own filter, scripts/nsjail_x32.c, nor the
# policy pyexec.command.X32_POLICY stopped it).
# It also reads what a script gets (the Python version and the installed packages)
# for GET /runtime, from the jail itself rather than from the service's own view.
SELF_TEST_SCRIPT = """\
import ctypes, errno, platform
from importlib import metadata

def main():
    libc = ctypes.CDLL(None, use_errno=True)
    x32_getpid = libc.syscall(0x40000000 | 39)
    packages = {(d.metadata["Name"], d.version) for d in metadata.distributions()}
    return [
        6 * 7,
        x32_getpid == -1 and ctypes.get_errno() == errno.EPERM,
        platform.python_version(),
        sorted([name, version] for name, version in packages if name),
    ]
"""
SELF_TEST_RESULT = [42, True]
UNAVAILABLE = (
    "The sandbox is not available on this instance, so no script is run "
    "(scripts only ever run inside the jail): {cause}"
)


def unavailable(reason: str) -> SandboxUnavailable:
    """The refusal when no jail can run: cause and fix in words, no internals."""
    return SandboxUnavailable(UNAVAILABLE.format(cause=diagnose(reason)))


def shutting_down() -> ShuttingDown:
    """The refusal once shutdown has begun."""
    return ShuttingDown("The service is shutting down; retry the request.")


def starting() -> SandboxStarting:
    """The refusal while the start-up self-test runs."""
    return SandboxStarting("The sandbox's start-up self-test is still running; retry.")


@dataclass(frozen=True)
class Health:
    """The result of the start-up self-test; ``runtime`` is what a script gets
    (GET /runtime's python and packages), read in the jail when it passed."""

    ok: bool
    reason: str
    cgroups: str
    runtime: dict[str, Any] | None = None


class Executor:
    """Runs scripts in single-use jails once the self-test has passed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cgroups: CgroupSupport = prepare_cgroups(
            settings.cgroup_parent, mount=settings.cgroup_mount == "auto"
        )
        self.pools = JailPools(settings, self.cgroups)
        self.admission = Admission(settings)
        self._health: Health | None = None
        self._tested = threading.Event()
        self._warm_up_lock = threading.Lock()
        self._warm_up_pid = 0  # the process that started the self-test (forks start anew)
        self._draining = threading.Event()
        self._active: set[Jail] = set()
        self._active_lock = threading.Lock()
        self._stopped = False
        self._shutdown_lock = threading.Lock()
        self.service_oom_protected = False
        self.jails_oom_first = False  # the self-test's jail got oom_score_adj 1000

    def warm_up(self) -> None:
        """Start the self-test, then the pool, in the background; once per process.

        Returns at once. No thread may start at import (gunicorn forks after it),
        so the serving process calls this when it is up, and the endpoints call
        it too in case nothing else has (a development server that never forks).
        """
        with self._warm_up_lock:
            if self._warm_up_pid == os.getpid():
                return
            self._warm_up_pid = os.getpid()
        self.service_oom_protected = lower_own_oom_score()
        if self.settings.memory_budget_note:
            # The host is smaller than the concurrency asks for (pyexec/hostmemory.py).
            log.warning(self.settings.memory_budget_note)
        threading.Thread(target=self._test_then_fill, name="self-test", daemon=True).start()

    def wait_health(self, timeout: float) -> Health | None:
        """Start the warm-up if it has not started, and wait up to ``timeout`` s for
        the self-test's result (None if it has not finished by then)."""
        self.warm_up()
        self._tested.wait(timeout)
        return self._health

    def health(self) -> Health | None:
        """The self-test's result; None while it runs. Starts nothing, never blocks."""
        return self._health

    def run(
        self, script: str, limits: Limits | None = None, payload: Payload | None = None
    ) -> Outcome:
        """Run ``script`` once in a fresh jail, with ``payload``'s input and files: the
        answer for whatever the script did; raises ShuttingDown, SandboxStarting,
        SandboxUnavailable or Overloaded."""
        limits = limits or self.settings.default_limits()
        if self._draining.is_set():
            raise shutting_down()
        self._require_health()
        ticket = self.admission.acquire(limits.memory_mb)
        try:
            return self._run_admitted(script, limits, ticket, payload or Payload())
        except BaseException:
            ticket.release()
            raise

    def _require_health(self) -> None:
        """Wait for the self-test (bounded by how long it can take), or refuse."""
        bound = self.settings.startup_timeout_seconds + self.settings.timeout_seconds + 5
        health = self.wait_health(bound)
        if health is None:
            raise starting()
        if not health.ok:
            raise unavailable(health.reason)

    def _run_admitted(
        self, script: str, limits: Limits, ticket: Ticket, payload: Payload
    ) -> Outcome:
        """Run on an admitted ticket, which the jail gives back once nsjail is reaped
        (a jail that lingers after its answer still holds its slot and memory)."""
        try:
            jail, _warm = self.pools.acquire(script, limits.memory_mb)
        except JailStartTimeout as exc:
            if self._draining.is_set():
                raise shutting_down() from None
            log.warning("jail start timed out on a busy instance: %s", exc)
            raise Overloaded(
                f"No jail got ready within {self.settings.startup_timeout_seconds:g} s: "
                "this instance is too busy right now; retry in a moment."
            ) from None
        except (JailStartError, OSError) as exc:
            if self._draining.is_set():
                raise shutting_down() from None
            log.error("jail start failed: %s", exc)
            raise unavailable(str(exc)) from None
        jail.on_reaped = ticket.release
        with self._active_lock:
            self._active.add(jail)
        try:
            record = jail.run(script, limits, payload)
        finally:
            with self._active_lock:
                self._active.discard(jail)
        outcome = interpret(
            record, self.settings.max_output_bytes, payload.caps, self.settings.maximum_limits()
        )
        if self._draining.is_set() and outcome.status != 200 and record.exit_code is not None:
            raise shutting_down()  # stopped by shutdown, not by its own doing
        return outcome

    def draining(self) -> bool:
        """True once shutdown has begun."""
        return self._draining.is_set()

    def running(self) -> int:
        """How many scripts are running now."""
        with self._active_lock:
            return len(self._active)

    def begin_shutdown(self) -> None:
        """Stop taking work now and run ``shutdown`` (with the configured grace) in the
        background: a signal handler's part. The scripts still running past the grace
        are stopped by this process itself, so their requests are answered (503
        ``shutting_down``) before the server's own deadline kills the process."""
        if self._draining.is_set():
            return
        self._draining.set()
        threading.Thread(target=self.shutdown, name="shutdown", daemon=True).start()

    def shutdown(self, grace_seconds: float | None = None) -> None:
        """Stop taking work, let running scripts finish within the grace period, then
        kill every jail (running and pooled) and wait until all are reaped.

        A second call waits until the first has finished, so the process does not exit
        in the middle of one begun by ``begin_shutdown``."""
        with self._shutdown_lock:
            if self._stopped:
                return
            self._stopped = True
            self._draining.set()
            self._stop(
                self.settings.shutdown_grace_seconds if grace_seconds is None else grace_seconds
            )

    def _stop(self, grace: float) -> None:
        self.pools.close()
        deadline = time.monotonic() + grace
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._active_lock:
            leftovers = list(self._active)
        for jail in leftovers:
            jail.terminate()
        deadline = time.monotonic() + 10
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.02)
        REAPER.wait_idle(timeout=10)
        # Nothing starts jails any more: cgroups that a killed nsjail left can go now.
        swept = self.cgroups.sweep()
        log.info(
            "shut down: %d running script(s) stopped, %d cgroup(s) swept", len(leftovers), swept
        )

    def _self_test(self) -> Health:
        """A real sandboxed run in a cold heavy jail (which also proves that the
        pre-imported modules load)."""
        mode = self.cgroups.mode
        try:
            jail = self.pools.cold_jail(self.pools.heavy)
        except (JailStartError, OSError) as exc:
            return Health(False, f"the jail does not start: {exc}", mode)
        self.jails_oom_first = jail.oom_first()
        outcome = interpret(jail.run(SELF_TEST_SCRIPT), self.settings.max_output_bytes)
        result = outcome.body.get("result")
        if outcome.status != 200 or not isinstance(result, list) or result[:1] != [42]:
            return Health(False, f"the self-test script failed: {outcome.body}", mode)
        if result[:2] != SELF_TEST_RESULT:
            return Health(False, "an x32 system call was not stopped by seccomp", mode)
        python, packages = result[2:4]
        runtime = {
            "python": python,
            "packages": [{"name": name, "version": version} for name, version in packages],
        }
        return Health(True, "", mode, runtime)

    def _test_then_fill(self) -> None:
        """Run the self-test, log what isolation holds, start the pool if it passed."""
        try:
            health = self._self_test()
        except Exception as exc:
            log.exception("sandbox self-test crashed")
            health = Health(False, f"the self-test crashed: {exc}", self.cgroups.mode)
        fields: dict[str, object] = {
            "settings": self.settings.public(),
            "isolation": self._isolation(health),
        }
        if health.ok:
            log.info("sandbox self-test passed", extra={"fields": fields})
            self.pools.start()
        else:
            fields["reason"] = health.reason
            log.error("sandbox self-test failed", extra={"fields": fields})
        self._health = health
        self._tested.set()

    def enforcement(self) -> dict[str, object]:
        """How each limit is held on this host (GET /healthz, the start-up log)."""
        cgroup = self.cgroups.enforced
        return {
            # Which hierarchy the jails' cgroups are in: host (/sys/fs/cgroup as found),
            # own_mount (a cgroup2 mount of the service's own), remount (/sys/fs/cgroup
            # remounted read-write), none.
            "cgroup_source": self.cgroups.source,
            "limits": {
                "memory": "cgroup" if cgroup else "watchdog",
                "pids": "cgroup" if cgroup else "rlimit",
                "cpu_time": "cgroup" if cgroup else "rlimit",
                "cpu_share": "cgroup" if cgroup else "nice",
            },
            # per_jail: each jail maps to an outer uid of its own, so per-uid kernel
            # budgets (pipe buffers, inotify watches) are per jail; shared: every
            # jail is 65534 outside too (PYEXEC_JAIL_UIDS, pyexec/jail_ids.py).
            "jail_uids": self.settings.jail_uids,
            "oom_priority": self.jails_oom_first,
            "service_oom_protected": self.service_oom_protected,
        }

    def _isolation(self, health: Health) -> dict[str, object]:
        """The isolation facts for the start-up log: nsjail.cfg's, and what holds here."""
        facts = load_isolation_facts(self.settings.nsjail_config)
        return {
            "self_test": "passed" if health.ok else "failed",
            "cgroups": health.cgroups,
            "cgroup_limits": list(CONTROLLERS) if self.cgroups.enforced else [],
            "rlimit_fallback": not self.cgroups.enforced,
            # Why there are no cgroups: what was found, and each mount attempt.
            **({"cgroup_reason": self.cgroups.reason} if self.cgroups.reason else {}),
            "namespaces": list(facts.namespaces),
            "seccomp": facts.seccomp,
            "jail_uid": (
                f"{JAIL_ID_BASE}-{JAIL_ID_BASE + JAIL_ID_COUNT - 1}, one per jail"
                if self.settings.jail_uids == "per_jail"
                else SHARED_ID
            ),
            "dies_with_service": dies_with_service(self.settings.nsjail_path),
            **self.enforcement(),
        }
