"""On the host, after the guests powered off: one verdict line and a short report
per host, from what each guest left in its run directory.

    .venv/bin/python hosts/report.py RUN_DIR HOST...

Per host it reads result.json (the guest's checks and figures; possibly partial if
the guest was killed), boot.txt (how the UML kernel ended, written by
hosts/boot.sh), console.log (the guest kernel's log: OOM kills, panics) and
service.log (the service's own error lines). Adds the host-side checks: the guest
powered off by itself within its time limit, finished its run, and left no UML
process on the host. Exits 1 when any host failed.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

OOM = re.compile(
    r"Out of memory: Killed process \d+ \((?P<name>[^)]*)\)"
    r".*?anon-rss:(?P<rss>\d+)kB.*?UID:(?P<uid>\d+)"
)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _boot(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in _read(path).splitlines() if "=" in line)


def _oom_kills(console: str) -> str:
    kills = [match.groupdict() for match in OOM.finditer(console)]
    if not kills:
        return "none"
    who = Counter(f"{k['name']} uid {k['uid']}" for k in kills)
    victims = ", ".join(f"{n}x {w}" for w, n in who.most_common())
    largest = max(int(k["rss"]) for k in kills) >> 10
    return f"{len(kills)} ({victims}; largest anon-rss {largest} MiB)"


def _service_errors(log: str) -> str:
    messages: Counter[str] = Counter()
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            if "Traceback" in line:
                messages["a Python traceback"] += 1
            continue
        if isinstance(entry, dict) and entry.get("severity") in ("ERROR", "CRITICAL"):
            messages[str(entry.get("message", ""))[:90]] += 1
    return "; ".join(f"{n}x {m}" for m, n in messages.most_common(3)) or "none"


def _kinds(load: dict[str, Any]) -> list[str]:
    lines = []
    for client, per in load.get("kinds", {}).items():
        if client.startswith("normal"):
            continue
        got = ", ".join(
            f"{name} {'/'.join(f'{label} x{n}' for label, n in labels.items())}"
            for name, labels in per.items()
        )
        lines.append(f"{client}: {got}")
    return lines


POWER_OFF_CHECK = "guest powered off by itself"
# The guest kernel's last line when its power-off went through (kernel/reboot.c).
POWER_DOWN = "reboot: Power down"
# timeout(1) passes on a child killed by a signal as 128 + the signal: 134 is SIGABRT.
UML_ABORTED = "134"


def powered_off_by_itself(boot: dict[str, str], console: str) -> tuple[bool, str]:
    """Whether the guest kernel powered itself off, and how the UML process ended.

    UML exits 0 after a power-off. Rarely (once in about 90 boots here) its host
    process aborts while it tears itself down, after the guest kernel has logged its
    power-off: the guest did power off, by itself and in time, so that passes, with
    the abort named. An abort without the power-off line (a panic), the timeout's
    124 or any other exit fails.
    """
    exit_code, limit = boot.get("exit", "?"), boot.get("limit", "?")
    detail = (
        f"UML exit {exit_code} after {boot.get('seconds', '?')} s"
        f" (124: killed at the {limit} s limit)"
    )
    if exit_code == "0":
        return True, detail
    last_line = console.rstrip().rpartition("\n")[2].strip()
    if exit_code == UML_ABORTED and last_line == POWER_DOWN:
        return True, f"{detail}: UML aborted in its own teardown, after the guest's power-off"
    return False, detail


def host_checks(
    name: str, directory: Path
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, str]]:
    """The guest's checks plus the host's own, the guest's figures, boot facts."""
    boot = _boot(directory / "boot.txt")
    try:
        result = json.loads(_read(directory / "result.json"))
    except ValueError:
        result = {"checks": []}
    checks = list(result.get("checks", []))
    powered_off, how = powered_off_by_itself(boot, _read(directory / "console.log"))
    checks.append({"name": POWER_OFF_CHECK, "passed": powered_off, "detail": how})
    checks.append(
        {"name": "guest finished its run", "passed": bool(result.get("done")), "detail": ""}
    )
    left = boot.get("left_on_host", "").strip()
    checks.append({"name": "no UML process left on the host", "passed": not left, "detail": left})
    return checks, result, boot


def _summary(result: dict[str, Any], boot: dict[str, str]) -> list[str]:
    """The short report's lines: the host, the load, memory and /healthz."""
    lines = [
        f"{boot.get('mem', '?')} guest ({result.get('mem_total_mib', '?')} MiB seen), "
        f"/healthz cgroups {result.get('cgroups')!r} ({result.get('cgroup_source')!r}), "
        f"healthy after {result.get('healthy_after_s', '?')} s, "
        f"pool full after {result.get('pool_full_after_s', '?')} s more"
    ]
    load, monitor = result.get("load", {}), result.get("monitor", {})
    if load:
        lines.append(
            f"load {result.get('duration', 0):.0f} s from {result.get('load_started_at')} "
            f"(with the drain {load['seconds']} s): {load['requests']} requests, "
            f"normal ok {load['normal_ok']} (slowest {load['normal_slowest_s']} s), "
            f"wrong {load['wrong']}, 5xx {load['status_500']}, lost {load['lost']}, "
            f"overloaded {load['overloaded']}"
        )
        lines += [f"  {line}" for line in _kinds(load)]
        lines += [f"  wrong: {line}" for line in load.get("wrong_answers", [])[:8]]
    if monitor:
        lines.append(
            f"service peak memory {monitor['peak_service_mib']} MiB, with its jails "
            f"{monitor['peak_service_with_jails_mib']} MiB "
            f"({monitor['peak_service_processes']} processes); guest MemAvailable low "
            f"{monitor['min_mem_available_mib']} MiB; up to {monitor['peak_runnable']} "
            "tasks runnable on the guest's one CPU"
        )
        if monitor.get("service_exit"):
            lines.append(monitor["service_exit"])
        failures = monitor["healthz_failures"]
        lines.append(
            f"/healthz: {len(failures)} of {monitor['healthz_polls']} polls failed "
            f"(slowest {monitor['healthz_slowest_ms']} ms) {', '.join(failures[:5])}".rstrip()
        )
    return lines


def _budget_note(log: str) -> str:
    """The service's start-up line on a host smaller than its concurrency asks for."""
    for line in log.splitlines():
        if '"memory budget ' in line:
            with contextlib.suppress(ValueError, AttributeError):
                return str(json.loads(line).get("message", ""))
    return ""


def report(name: str, directory: Path) -> bool:
    """Print one host's verdict line and its short report; True when it passed."""
    checks, result, boot = host_checks(name, directory)
    failed = [c for c in checks if not c["passed"]]
    print(f"host {name}: {len(checks) - len(failed)} passed, {len(failed)} failed")
    lines = _summary(result, boot)
    lines.append(f"guest OOM kills: {_oom_kills(_read(directory / 'console.log'))}")
    lines.append(f"service errors: {_service_errors(_read(directory / 'service.log'))}")
    budget = _budget_note(_read(directory / "service.log"))
    if budget or result.get("service_environ"):
        lines.append(f"service: {result.get('service_environ', {})} {budget}".rstrip())
    lines.append(f"after stop: {result.get('stop', 'not reached')}")
    power_off = next(c for c in checks if c["name"] == POWER_OFF_CHECK)
    if power_off["passed"] and boot.get("exit") != "0":
        lines.append(f"note: {power_off['detail']}")
    lines += [f"FAIL {check['name']}: {str(check['detail'])[:400]}" for check in failed]
    lines.append(f"logs: {directory}/{{guest,service,console}}.log")
    for line in lines:
        print(f"  {line}")
    return not failed


def main() -> int:
    run_dir, hosts = Path(sys.argv[1]), sys.argv[2:]
    passed = [report(host, run_dir / host) for host in hosts]
    print(f"hosts: {sum(passed)} passed, {len(passed) - sum(passed)} failed")
    return 0 if all(passed) else 1


if __name__ == "__main__":
    sys.exit(main())
