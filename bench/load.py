"""Load test: ramp a mix of normal, slow, failing and hostile scripts to several times
the service's capacity and check that nothing is lost or answered wrongly.

Starts the service (gunicorn + gunicorn.conf.py) on loopback only, then runs phases
of increasing concurrency. Each request carries a unique token, so an answer meant
for another request is caught. 503 (overloaded, with Retry-After) is an allowed
answer; a 500, a dropped connection or a wrong body counts as wrong. Prints
requests sent, answers by status, wrong answers (must be 0), p50/p99 latency of the
successful ones, the service's peak memory (RSS of it and its jails), and the CPU
the service's worker process spent per request (its jails not counted).
Bounded: a fixed number of requests per phase and a deadline per phase.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import percentile, rss_mib, worker_cpu_seconds
from tests.live_server import serve

Check = Callable[[int, dict[str, Any]], bool]

# (name, share of requests, script template with TOKEN, extra request fields, check)
MIX: list[tuple[str, int, str, dict[str, Any], Callable[[str], Check]]] = [
    (
        "hello",
        45,
        'def main():\n    print("TOKEN", end="")\n    return {"token": "TOKEN"}\n',
        {},
        lambda t: lambda s, b: s == 200 and b["result"] == {"token": t} and b["stdout"] == t,
    ),
    (
        "pandas",
        15,
        "import pandas as pd\ndef main():\n"
        '    return {"token": "TOKEN", "sum": int(pd.Series([1, 2, 3]).sum())}\n',
        {},
        lambda t: lambda s, b: s == 200 and b["result"] == {"token": t, "sum": 6},
    ),
    (
        "slow",
        10,
        'import time\ndef main():\n    time.sleep(0.5)\n    return "TOKEN"\n',
        {},
        lambda t: lambda s, b: s == 200 and b["result"] == t,
    ),
    (
        "failing",
        10,
        'def main():\n    raise ValueError("TOKEN")\n',
        {},
        lambda t: lambda s, b: s == 400 and b["kind"] == "exception" and t in b["error"],
    ),
    (
        "timeout",
        5,
        'import time\ndef main():\n    print("TOKEN")\n    time.sleep(100)\n',
        {"timeout_seconds": 1},
        lambda t: lambda s, b: s == 400 and b["kind"] == "timeout" and b["stdout"] == t + "\n",
    ),
    (
        "memory_bomb",
        5,
        "# TOKEN\ndef main():\n    hog = []\n    while True:\n"
        "        hog.append(bytearray(32 * 1024 * 1024))\n",
        {},
        lambda t: lambda s, b: s == 400 and b["kind"] == "memory_limit",
    ),
    (
        "stdout_flood",
        5,
        'import sys\ndef main():\n    while True:\n        sys.stdout.write("TOKEN " * 1000)\n',
        {},
        lambda t: (
            lambda s, b: s == 400 and b["kind"] == "output_limit" and b["stdout"].startswith(t)
        ),
    ),
    (
        "fork_bomb",
        5,
        "# TOKEN\nimport os\ndef main():\n    while True:\n        try:\n            os.fork()\n"
        "        except OSError:\n            pass\n",
        {"timeout_seconds": 1},
        lambda t: lambda s, b: s == 400 and b["kind"] in ("timeout", "cpu_limit"),
    ),
]


def pick(index: int) -> tuple[str, str, dict[str, Any], Check]:
    """The index-th request of the mix: name, script, extra fields, its check."""
    total = sum(share for _, share, *_ in MIX)
    slot = (index * 37) % total  # 37 is prime to 100: the kinds interleave
    for name, share, template, extra, check in MIX:
        if slot < share:
            token = f"tok{index:05d}x"
            return name, template.replace("TOKEN", token), extra, check(token)
        slot -= share
    raise AssertionError("unreachable")


def send(port: int, index: int) -> tuple[str, int | str, float, bool]:
    """One request: (name, status or error, seconds, answered right)."""
    name, source, extra, check = pick(index)
    body = json.dumps({"script": source, **extra}).encode()
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("POST", "/execute", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        data = json.loads(response.read())
        status = response.status
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return name, type(exc).__name__, time.perf_counter() - started, False
    finally:
        connection.close()
    elapsed = time.perf_counter() - started
    if status == 503:
        right = data.get("kind") == "overloaded" and response.getheader("Retry-After") == "1"
        return name, status, elapsed, right
    try:
        right = check(status, data)
    except (KeyError, TypeError):
        right = False
    return name, status, elapsed, right


Result = tuple[str, int | str, float, bool]


def run_phase(
    port: int, concurrency: int, count: int, first: int, deadline: float
) -> list[Result]:
    """Send ``count`` requests, ``concurrency`` at a time; print the phase's figures."""
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(send, port, first + i) for i in range(count)]
        phase = [f.result(timeout=deadline) for f in futures]
    ok = [t for _, s, t, right in phase if s == 200 and right]
    by_status = Counter(str(s) for _, s, _, _ in phase)
    print(
        f"phase {concurrency:3d} in flight, {count:4d} requests, "
        f"{time.monotonic() - started:5.1f} s: {dict(sorted(by_status.items()))}, "
        f"wrong {sum(not r for *_, r in phase)}, "
        f"p50 {1000 * statistics.median(ok) if ok else 0:.0f} ms, "
        f"p99 {1000 * percentile(ok, 0.99) if ok else 0:.0f} ms"
    )
    return phase


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--phases", default="2:40,8:80,24:120,48:160", help="concurrency:requests pairs"
    )
    parser.add_argument("--phase-deadline", type=float, default=90)
    args = parser.parse_args()
    phases = [tuple(map(int, pair.split(":"))) for pair in args.phases.split(",")]

    peak = [0.0]
    sampling = threading.Event()
    results: list[Result] = []
    with serve() as server:

        def sample() -> None:
            while not sampling.is_set():
                peak[0] = max(peak[0], rss_mib(server.process.pid))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        cpu_before = worker_cpu_seconds(server.process.pid)
        try:
            for concurrency, count in phases:
                results += run_phase(
                    server.port, concurrency, count, len(results), args.phase_deadline
                )
        finally:
            sampling.set()
        worker_cpu = worker_cpu_seconds(server.process.pid) - cpu_before

    ok_times = [t for _, s, t, right in results if s == 200 and right]
    wrong = [(n, s) for n, s, _, right in results if not right]
    print(f"\nrequests sent: {len(results)}")
    print(f"answered by status: {dict(sorted(Counter(str(s) for _, s, _, _ in results).items()))}")
    print(f"wrong answers: {len(wrong)} {Counter(wrong).most_common(5) if wrong else ''}")
    if ok_times:
        print(
            f"successful latency: p50 {1000 * statistics.median(ok_times):.0f} ms, "
            f"p99 {1000 * percentile(ok_times, 0.99):.0f} ms"
        )
    print(f"peak memory of the service and its jails: {peak[0]:.0f} MiB")
    print(
        f"service CPU per request: {1000 * worker_cpu / max(len(results), 1):.1f} ms "
        "(the worker process: HTTP, validation, jail I/O, logs; its jails not counted)"
    )
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
