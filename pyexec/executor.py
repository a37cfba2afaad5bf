"""Run one script in a fresh jail and answer for it; refuse to run when the jail is broken."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from pyexec.cgroups import CgroupSupport, prepare_cgroups
from pyexec.jail import Jail, JailStartError
from pyexec.outcome import Outcome, interpret
from pyexec.pool import JailPools
from pyexec.settings import Limits, Settings
from pyexec.spawn import DEATH_SIGNAL_PREFIX, REAPER

log = logging.getLogger("pyexec")

SELF_TEST_SCRIPT = "def main():\n    return 6 * 7\n"
UNAVAILABLE = (
    "The sandbox is not available on this instance, so no script is run "
    "(scripts only ever run inside the jail): {cause}"
)
# nsjail log fragment -> the cause and the fix, in words an operator can act on.
DIAGNOSES = (
    (
        ("clone(", "CLONE_NEW", "unshare", "Operation not permitted", "mandatory point"),
        "this host does not let the service create Linux namespaces. On Cloud Run, "
        "deploy with --execution-environment gen2; with Docker or Podman, run the "
        "container with --privileged.",
    ),
    (
        ("execve", "No such file or directory"),
        "the sandbox's Python environment is missing; run `make setup` (or rebuild the image).",
    ),
)


SHUTTING_DOWN = Outcome(
    503,
    {"error": "The service is shutting down; retry the request.", "kind": "shutting_down"},
    (("Retry-After", "1"),),
)


def diagnose(reason: str) -> str:
    """One sentence naming why the jail failed and what fixes it."""
    for fragments, sentence in DIAGNOSES:
        if any(fragment in reason for fragment in fragments):
            return sentence
    return "the jail failed its start-up self-test; the service log has the details."


@dataclass(frozen=True)
class Health:
    """The cached result of the start-up self-test."""

    ok: bool
    reason: str
    cgroups: str


class Executor:
    """Runs scripts in single-use jails; knows whether the jail works at all."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cgroups: CgroupSupport = prepare_cgroups(settings.cgroup_parent)
        self.pools = JailPools(settings, self.cgroups)
        self._health: Health | None = None
        self._health_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(settings.max_concurrent)
        self._draining = threading.Event()
        self._active: set[Jail] = set()
        self._active_lock = threading.Lock()
        self._waiting = 0
        self._stopped = False
        self._memory = threading.Condition()
        self._memory_used = 0

    def unavailable(self, reason: str) -> Outcome:
        """The 503 answer when no jail can run: cause and fix, no internals."""
        return Outcome(
            503,
            {
                "error": UNAVAILABLE.format(cause=diagnose(reason)),
                "kind": "sandbox_unavailable",
            },
            (("Retry-After", "30"),),
        )

    def run(self, script: str, limits: Limits | None = None) -> Outcome:
        """Run ``script`` once in a fresh jail. Never raises for a script's fault."""
        limits = limits or self.settings.default_limits()
        if self._draining.is_set():
            return SHUTTING_DOWN
        health = self.health()
        if not health.ok:
            return self.unavailable(health.reason)
        # Admission: at most max_concurrent scripts at once. A request waits for a
        # slot only while fewer than max_queue others wait, and only for
        # queue_wait_seconds; otherwise 503 with Retry-After at once, so that the
        # latency of admitted requests stays near normal under overload.
        with self._active_lock:
            queue_full = self._waiting >= self.settings.max_queue
            if not queue_full:
                self._waiting += 1
        if queue_full:
            admitted = self._slots.acquire(blocking=False)
        else:
            try:
                admitted = self._slots.acquire(timeout=self.settings.queue_wait_seconds)
            finally:
                with self._active_lock:
                    self._waiting -= 1
        if not admitted:
            return self.overloaded()
        try:
            if not self._reserve_memory(limits.memory_mb):
                return self.overloaded()
            try:
                return self._run_admitted(script, limits)
            finally:
                self._release_memory(limits.memory_mb)
        finally:
            self._slots.release()

    def _reserve_memory(self, memory_mb: int) -> bool:
        """Count ``memory_mb`` against the instance's memory budget (waiting at most
        queue_wait_seconds): running jails' limits never add up past it."""
        deadline = time.monotonic() + self.settings.queue_wait_seconds
        with self._memory:
            while self._memory_used + memory_mb > self.settings.memory_budget_mb:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._memory.wait(remaining)
            self._memory_used += memory_mb
            return True

    def _release_memory(self, memory_mb: int) -> None:
        with self._memory:
            self._memory_used -= memory_mb
            self._memory.notify_all()

    def _run_admitted(self, script: str, limits: Limits) -> Outcome:
        try:
            jail, _warm = self.pools.acquire(script, limits.memory_mb)
        except (JailStartError, OSError) as exc:
            if self._draining.is_set():
                return SHUTTING_DOWN
            log.error("jail start failed: %s", exc)
            return self.unavailable(str(exc))
        with self._active_lock:
            self._active.add(jail)
        try:
            record = jail.run(script, limits)
        finally:
            with self._active_lock:
                self._active.discard(jail)
        outcome = interpret(record, self.settings.max_output_bytes)
        if self._draining.is_set() and outcome.status != 200 and record.exit_code is not None:
            return SHUTTING_DOWN  # stopped by shutdown, not by its own doing
        return outcome

    def overloaded(self) -> Outcome:
        """503 when every slot stayed busy for the whole queue wait."""
        return Outcome(
            503,
            {
                "error": f"The service is running its maximum of {self.settings.max_concurrent} "
                f"scripts (or {self.settings.memory_budget_mb} MB of jails) at once; "
                "retry in a moment.",
                "kind": "overloaded",
            },
            (("Retry-After", "1"),),
        )

    def draining(self) -> bool:
        """True once shutdown has begun."""
        return self._draining.is_set()

    def shutting_down(self) -> Outcome:
        """503 while the service shuts down."""
        return SHUTTING_DOWN

    def running(self) -> int:
        """How many scripts are running now."""
        with self._active_lock:
            return len(self._active)

    def begin_shutdown(self) -> None:
        """Stop taking work and stop the pool, without blocking (a signal handler's part)."""
        if self._draining.is_set():
            return
        self._draining.set()
        threading.Thread(target=self.pools.close, name="pool-close", daemon=True).start()

    def shutdown(self, grace_seconds: float | None = None) -> None:
        """Stop taking work, let running scripts finish within the grace period, then
        kill every jail (running and pooled) and wait until all are reaped."""
        if self._stopped:
            return
        self._stopped = True
        self._draining.set()
        grace = self.settings.shutdown_grace_seconds if grace_seconds is None else grace_seconds
        self.pools.close()
        deadline = time.monotonic() + grace
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._active_lock:
            leftovers = list(self._active)
        for jail in leftovers:
            jail.kill()
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
        mode = self.cgroups.mode
        try:
            # A cold heavy jail: also proves the pre-imported modules load.
            jail = self.pools.cold_jail(self.pools.heavy)
        except (JailStartError, OSError) as exc:
            return Health(False, f"the jail does not start: {exc}", mode)
        record = jail.run(SELF_TEST_SCRIPT)
        outcome = interpret(record, self.settings.max_output_bytes)
        if outcome.status != 200 or outcome.body.get("result") != 42:
            return Health(False, f"the self-test script failed: {outcome.body}", mode)
        return Health(True, "", mode)

    def health(self) -> Health:
        """Run the self-test once (a real sandboxed run) and cache its answer."""
        with self._health_lock:
            if self._health is None:
                self._health = self._self_test()
                isolation = {
                    "self_test": "passed" if self._health.ok else "failed",
                    "cgroups": self._health.cgroups,
                    "cgroup_limits": ["memory", "pids", "cpu"] if self.cgroups.enforced else [],
                    "rlimit_fallback": not self.cgroups.enforced,
                    "namespaces": ["user", "mount", "pid", "net", "ipc", "uts", "cgroup"],
                    "seccomp": True,
                    "jail_uid": 65534,
                    "dies_with_service": bool(DEATH_SIGNAL_PREFIX),
                }
                fields = {"settings": self.settings.public(), "isolation": isolation}
                if self._health.ok:
                    log.info("sandbox self-test passed", extra={"fields": fields})
                    self.pools.start()
                else:
                    fields["reason"] = self._health.reason
                    log.error("sandbox self-test failed", extra={"fields": fields})
            return self._health
