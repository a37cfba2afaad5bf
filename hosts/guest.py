"""Inside a UML guest (run by hosts/guest_init.sh): prove the service on this host.

Starts the service as `make run` does, waits for /healthz 200 and records its
`cgroups` field, waits for the pool of pre-warmed jails to fill (the steady state
of a real instance), runs the check set, then the hostile load (hosts/load.py),
while /healthz is polled every second, stops the service and looks for what it left.
Every step appends named pass/fail checks to RUN_DIR/result.json, rewritten and
fsync'ed after each step: the guest may be killed at any time (the host's timeout,
or a guest that runs out of memory), and the host reads whatever got there.

    .venv/bin/python hosts/guest.py RUN_DIR MODE DURATION     (MODE: v2, own or none)

MODE v2: cgroup2 on /sys/fs/cgroup. MODE own: no cgroup mounted, and the service may
mount a cgroup2 hierarchy of its own (PYEXEC_CGROUP_MOUNT=auto, the default). MODE
none: no cgroup mounted and the service told not to mount one (PYEXEC_CGROUP_MOUNT=off):
the no-cgroup fallback.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import catalog
import load
import service
from client import call
from monitor import Monitor

# MODE -> (/healthz cgroups, /healthz cgroup_source, where the jails' cgroups are).
EXPECTED = {
    "v2": ("v2", "host", Path("/sys/fs/cgroup")),
    "own": ("v2", "own_mount", Path("/run/pyexec/cgroup2")),
    "none": ("none", "none", None),
}
SMALL_HOST_MIB = 1536
# What an operator of a 1 GiB instance sets: a smaller pool leaves the jails three
# slots of 256 MB instead of two (pyexec/hostmemory.py, docs/configuration.md), and
# with fewer slots than clients, a request waits for one (up to 30 s) instead of
# being refused after half a second.
SMALL_HOST_POOL = {
    "PYEXEC_LIGHT_POOL_SIZE": "2",
    "PYEXEC_POOL_SIZE": "1",
    "PYEXEC_CHART_POOL_SIZE": "0",
    "PYEXEC_QUEUE_WAIT": "30",
}
CHECK_SET = ("hello", "pandas", "memory_bomb", "fork_bomb", "cpu_hog", "stdout_flood")


def pool_sizes(environ: dict[str, str]) -> dict[str, int]:
    """The pool the service fills with ``environ`` (else the defaults) before the
    checks: the steady state of a real instance."""

    def size(name: str, default: int) -> int:
        return int(environ.get(name) or os.environ.get(name) or default)

    return {"light": size("PYEXEC_LIGHT_POOL_SIZE", 6), "heavy": size("PYEXEC_POOL_SIZE", 2)}


class Result:
    """result.json: named checks plus figures, saved after every step."""

    def __init__(self, path: Path, **facts: Any) -> None:
        self.path = path
        self.data: dict[str, Any] = {**facts, "checks": [], "done": False}
        self.save()

    def check(self, name: str, passed: bool, detail: str = "") -> bool:
        self.data["checks"].append({"name": name, "passed": bool(passed), "detail": detail})
        print(f"{'PASS' if passed else 'FAIL'} {name}: {detail}", flush=True)
        return passed

    def save(self) -> None:
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("w") as out:
            json.dump(self.data, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(self.path)


def run_check_set(result: Result) -> None:
    """Each request of the check set alone, judged as in the catalog."""
    for name in CHECK_SET:
        request = catalog.make(name, f"check-{name}-{secrets.token_hex(4)}")
        began = time.monotonic()
        answer = call("POST", "/execute", request.body, timeout=120)
        took = time.monotonic() - began
        result.check(
            f"check {name}",
            catalog.judge(request, answer),
            f"{catalog.describe(answer)} ({took:.1f} s)",
        )
        result.save()


def judge_load(result: Result, figures: dict[str, Any], forkers: bool) -> None:
    """The load's pass conditions, one check each."""
    result.check(
        "load: no wrong answer",
        figures["wrong"] == 0,
        f"{figures['wrong']} of {figures['requests']}: {figures['wrong_examples']}",
    )
    result.check(
        "load: no 500",
        figures["status_500"] == 0,
        f"{figures['status_500']} answers 5xx (not 503)",
    )
    result.check(
        "load: nothing lost", figures["lost"] == 0, f"{figures['lost']} requests got no answer"
    )
    kinds = figures["kinds"]
    names = list(load.ATTACKS) + (["forker"] if forkers else [])
    for name in names:
        got: dict[str, int] = {}
        for client, per in kinds.items():
            for label, count in per.get(name, {}).items():
                got[f"{client}:{label}"] = count
        own = catalog.OWN_KINDS[name]
        bad = {k: v for k, v in got.items() if k.split(":", 1)[1] not in own | {"overloaded"}}
        ran = [k for k in got if k.split(":", 1)[1] in own]
        result.check(
            f"load: {name} gets its own kind",
            bool(ran) and not bad,
            f"own {sorted(own)}, got {got or 'nothing: never sent within the load'}",
        )


def run_under_load(
    result: Result,
    process: subprocess.Popen[bytes],
    duration: float,
    forkers: bool,
    pool: dict[str, int],
) -> None:
    """With the service healthy: the pool, the check set, then the hostile load while
    /healthz and memory are watched; each judged into ``result``."""
    monitor = Monitor(process.pid).start()
    took, seen = service.wait_pool(pool, timeout=120)
    result.data["pool_full_after_s"] = round(took, 1)
    result.data["pool_before_checks"] = seen
    run_check_set(result)
    service.wait_pool(pool, timeout=60)
    result.data["load_started_at"] = f"t+{monitor.now():.0f}s"
    figures = load.run(duration, forkers=forkers)
    result.data["load"] = figures
    judge_load(result, figures, forkers=forkers)
    monitor.stop()
    result.data["monitor"] = monitor.figures()
    failures = monitor.figures()["healthz_failures"]
    result.check(
        "/healthz 200 throughout",
        monitor.polls > 0 and not failures,
        f"{len(failures)} of {monitor.polls} polls failed: {failures[:8]}",
    )
    result.check(
        "service alive after the load",
        process.poll() is None,
        f"exit code {process.returncode}",
    )
    result.save()


def main() -> int:
    run_dir, mode, duration = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    result = Result(
        run_dir / "result.json",
        mode=mode,
        duration=duration,
        mem_total_mib=round(_mem_total_mib()),
    )
    want_cgroups, want_source, cgroup_root = EXPECTED[mode]
    forkers = want_cgroups == "none"
    environ = {"PYEXEC_CGROUP_MOUNT": "off" if mode == "none" else "auto"}
    if _mem_total_mib() < SMALL_HOST_MIB:
        environ.update(SMALL_HOST_POOL)
    result.data["service_environ"] = environ
    process = service.start(run_dir / "service.log", environ)
    took, answer = service.wait_healthy(process, timeout=240)
    result.data["healthy_after_s"] = round(took, 1)
    healthy = result.check(
        "service healthy",
        isinstance(answer, tuple) and answer[0] == 200,
        f"{answer} after {took:.1f} s",
    )
    body = answer[1] if isinstance(answer, tuple) and isinstance(answer[1], dict) else {}
    cgroups, source = body.get("cgroups"), body.get("cgroup_source")
    result.data["cgroups"] = cgroups
    result.data["cgroup_source"] = source
    result.check(
        f"/healthz cgroups is {want_cgroups} ({want_source})",
        (cgroups, source) == (want_cgroups, want_source),
        f"reported {cgroups!r} ({source!r})",
    )
    result.save()
    if healthy:
        run_under_load(result, process, duration, forkers, pool_sizes(environ))
    result.data["stop"] = service.stop(process)
    time.sleep(2)  # let the last reaped jails' cgroups go
    processes = service.leftover_processes()
    jails, others = service.leftover_cgroups(cgroup_root)
    result.data["cgroups_after_stop"] = others
    result.check(
        "no process left after stop",
        not processes,
        f"{result.data['stop']}; left: {processes[:10]}",
    )
    result.check("no jail cgroup left after stop", not jails, f"left: {jails[:10]}")
    result.data["done"] = True
    result.save()
    return 0


def _mem_total_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024
    return 0.0


if __name__ == "__main__":
    sys.exit(main())
