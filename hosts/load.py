"""Inside the guest: the hostile load, for a fixed duration.

Beside four normal clients (hello and pandas in turn, each request with its own
token checked in the answer), two attackers loop a fork bomb, a stdout flood, a CPU
hog and a memory bomb (offset by two, so two different attacks run at once), and
on hosts without cgroups two more loop a script that forks 100 children of 250 MB
each. Eight clients at most, the service's default PYEXEC_MAX_CONCURRENT; on a host
whose memory allows fewer slots (pyexec/hostmemory.py) a 503 `overloaded` is
expected: it is counted apart, not as wrong, and the client waits a moment and sends
the same request again, as a client told to retry would.

Wrong means: a normal request not answered 200 with its own token, an attack not
answered with its own kind (catalog.OWN_KINDS), a 500, or no answer at all.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter, defaultdict
from typing import Any

import catalog
from client import call

NORMAL = ("hello", "pandas")
# The quick attacks first, so that a short load still sends every kind.
ATTACKS = ("fork_bomb", "stdout_flood", "cpu_hog", "memory_bomb")
OVERLOADED_PAUSE_SECONDS = 0.25
# After the load's end, how long a client whose last answer was `overloaded` keeps
# sending that request again: an attack refused for want of a slot has not been
# answered yet, and the slots free up once the other clients stop.
RETRY_AFTER_END_SECONDS = 60.0


def _clients(forkers: bool) -> list[tuple[str, tuple[str, ...]]]:
    """(client name, the requests it loops over, in order)."""
    clients = [(f"normal-{i}", NORMAL[i % 2 :] + NORMAL[: i % 2]) for i in range(4)]
    clients += [(f"attacker-{i}", ATTACKS[2 * i :] + ATTACKS[: 2 * i]) for i in range(2)]
    if forkers:
        clients += [(f"forker-{i}", ("forker",)) for i in range(2)]
    return clients


# (client, request name, answer's label, status or 0, right, seconds)
Record = tuple[str, str, str, int, bool, float]


def run(duration: float, forkers: bool) -> dict[str, Any]:
    """Every client loops until ``duration`` has passed, then finishes the request
    it is in (each has at most 120 s; one answered `overloaded` is sent again for up
    to RETRY_AFTER_END_SECONDS more). Forkers only on hosts without cgroups.
    Returns the figures ``summarise`` makes."""
    deadline = time.monotonic() + duration
    records: list[Record] = []
    wrong: dict[tuple[str, str], str] = {}  # the first wrong answer of each request and kind
    lock = threading.Lock()

    def client(name: str, rotation: tuple[str, ...]) -> None:
        turn = 0
        retrying = False
        while time.monotonic() < deadline or (
            retrying and time.monotonic() < deadline + RETRY_AFTER_END_SECONDS
        ):
            request = catalog.make(
                rotation[turn % len(rotation)], f"{name}-{turn}-{secrets.token_hex(4)}"
            )
            began = time.monotonic()
            answer = call("POST", "/execute", request.body, timeout=120)
            label = catalog.kind_of(answer)
            status = answer[0] if isinstance(answer, tuple) else 0
            right = catalog.judge(request, answer) or label == "overloaded"
            took = time.monotonic() - began
            with lock:
                records.append((name, request.name, label, status, right, took))
                if not right and (request.name, label) not in wrong:
                    wrong[request.name, label] = (
                        f"{name} {request.name} ({took:.1f} s): {catalog.describe(answer)}"
                    )
            retrying = label == "overloaded"
            if retrying:
                time.sleep(OVERLOADED_PAUSE_SECONDS)
                continue  # the same request again, even after the end: every attack gets its turn
            turn += 1
            if not status:
                time.sleep(1)  # no answer (the service may be gone): count, do not spin

    threads = [threading.Thread(target=client, args=c, daemon=True) for c in _clients(forkers)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + RETRY_AFTER_END_SECONDS + 125)
    figures = summarise(records)
    figures["wrong_answers"] = list(wrong.values())
    figures["seconds"] = round(time.monotonic() - started, 1)
    figures["clients_still_waiting"] = sum(thread.is_alive() for thread in threads)
    return figures


def summarise(records: list[Record]) -> dict[str, Any]:
    """Counts per client and request: the kinds each attacker got, what was wrong."""
    kinds: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for client, name, label, *_ in records:
        kinds[client][name][label] += 1
    wrong = Counter(f"{c} {n}: {label}" for c, n, label, _, right, _ in records if not right)
    normal_ok = [s for c, _, label, _, _, s in records if c.startswith("normal") and label == "ok"]
    return {
        "requests": len(records),
        "kinds": {c: {n: dict(k) for n, k in per.items()} for c, per in sorted(kinds.items())},
        "wrong": sum(wrong.values()),
        "wrong_examples": wrong.most_common(12),
        "status_500": sum(status >= 500 and status != 503 for *_, status, _, _ in records),
        "lost": sum(status == 0 for *_, status, _, _ in records),  # no answer at all
        "overloaded": sum(label == "overloaded" for _, _, label, *_ in records),
        "normal_ok": len(normal_ok),
        "normal_slowest_s": round(max(normal_ok, default=0.0), 1),
    }
