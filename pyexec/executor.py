"""Run one script in a fresh jail and answer for it; refuse to run when the jail is broken."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from pyexec.cgroups import CgroupSupport, prepare_cgroups
from pyexec.jail import JailStartError
from pyexec.outcome import Outcome, interpret
from pyexec.pool import JailPools
from pyexec.settings import Limits, Settings

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
        health = self.health()
        if not health.ok:
            return self.unavailable(health.reason)
        try:
            jail, _warm = self.pools.acquire(script, limits.memory_mb)
        except (JailStartError, OSError) as exc:
            log.error("jail start failed: %s", exc)
            return self.unavailable(str(exc))
        try:
            record = jail.run(script, limits)
        except BaseException:
            jail.close()
            raise
        return interpret(record, self.settings.max_output_bytes)

    def _self_test(self) -> Health:
        mode = self.cgroups.mode
        try:
            # A cold heavy jail: also proves the pre-imported modules load.
            jail = self.pools.cold_jail(self.pools.heavy)
        except (JailStartError, OSError) as exc:
            return Health(False, f"the jail does not start: {exc}", mode)
        try:
            record = jail.run(SELF_TEST_SCRIPT)
        except BaseException:
            jail.close()
            raise
        outcome = interpret(record, self.settings.max_output_bytes)
        if outcome.status != 200 or outcome.body.get("result") != 42:
            return Health(False, f"the self-test script failed: {outcome.body}", mode)
        return Health(True, "", mode)

    def health(self) -> Health:
        """Run the self-test once (a real sandboxed run) and cache its answer."""
        with self._health_lock:
            if self._health is None:
                self._health = self._self_test()
                if self._health.ok:
                    log.info("sandbox self-test passed (cgroups: %s)", self._health.cgroups)
                    self.pools.start()
                else:
                    log.error("sandbox self-test failed: %s", self._health.reason)
            return self._health
