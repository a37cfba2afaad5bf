"""Latency and burst throughput of the API against bare cold Python processes.

Starts the service (functions-framework on a loopback port), waits for its pool to
fill, then measures, interleaved in one run so machine noise hits both sides:

- end-to-end HTTP latency (p50/p90) of a hello-world and a pandas script, of a
  pandas script that reads a 1 MB CSV sent as a request file (the bare side reads
  the same CSV from disk), and of a matplotlib figure saved as a PNG and returned
  with ``output_files`` (the bare side has a copy of the sandbox's font cache, so
  neither side builds it);
- the same scripts as bare, unsandboxed ``python -c`` processes (the baseline),
  using the sandbox's own interpreter so both sides import the same pandas;
- a burst (40 requests, 8 in flight) through the API and as bare processes;
- the memory (RSS) of the service and its idle pooled jails;
- what a request costs under steady load (issue 20): hello world back to back, in
  rounds that alternate with bare ``python -S -c pass`` and ``python -c pass``
  starts, counting the whole machine's CPU (refills, teardown, the kernel) and the
  service worker's; each round also times hellos paced (each once the pool is full
  again), the same round's baseline for the back-to-back p50.

It prints every figure and the ratios API/bare with the targets of issues 4 and 20.
Loopback only; bounded in count and time.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))
from pyexec.settings import load_settings  # noqa: E402
from tests.live_server import serve  # noqa: E402

SANDBOX_PYTHON = "/opt/pyexec/sandbox/bin/python"
SCRIPTS = {
    "hello": 'def main():\n    return {"hello": "world"}\n',
    "pandas": (
        "import pandas as pd\n\n\ndef main():\n"
        '    frame = pd.DataFrame({"a": [1, 2, 3]})\n'
        '    return int(frame["a"].sum())\n'
    ),
}
CSV_ROWS = 55_000
SCRIPTS["csv"] = (
    'import pandas as pd\n\n\ndef main():\n    return int(pd.read_csv("in.csv")["n"].sum())\n'
)
CSV_TEXT = "n,name\n" + "".join(f"{i},row-{i:08d}\n" for i in range(CSV_ROWS))
SCRIPTS["chart"] = (
    "import matplotlib.pyplot as plt\n\n\ndef main():\n"
    "    fig, ax = plt.subplots(figsize=(6, 4))\n"
    '    ax.plot(range(10), [n * n for n in range(10)], marker="o", label="n squared")\n'
    '    ax.set(title="Squares", xlabel="n", ylabel="n squared")\n'
    "    ax.legend()\n"
    '    fig.savefig("chart.png", dpi=100)\n'
    '    return list(plt.imread("chart.png").shape)\n'
)
EXPECTED = {
    "hello": {"hello": "world"},
    "pandas": 6,
    "csv": sum(range(CSV_ROWS)),
    "chart": [400, 600, 4],
}
EXTRA_FIELDS: dict[str, dict[str, object]] = {
    "csv": {"files": [{"path": "in.csv", "content": CSV_TEXT}]},
    "chart": {"output_files": ["*.png"]},
}
LATENCY_ONLY = {"csv", "chart"}  # no burst
CSV_DIR = Path(tempfile.mkdtemp(prefix="pyexec-bench-"))  # the bare side's cwd
# The bare side's matplotlib: Agg, and a copy of the font cache that setup built into
# the sandbox (a copy: a bare process could rewrite it), as in the jail.
FONT_CACHE_DIR = Path("/opt/pyexec/sandbox/share/matplotlib")
BARE_ENV = {**os.environ, "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(CSV_DIR / "matplotlib")}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PACED_PER_ROUND = 15  # paced hellos in each round of the cost figures
TARGETS = {  # name -> (kind of ratio, bound); from issues 4 and 16
    "latency hello": ("<=", 0.5),
    "latency pandas": ("<=", 0.05),
    "latency chart": ("<=", 0.2),
    "burst hello": (">=", 0.7),
    "burst pandas": (">=", 0.9),
    # Issue 20: a request's cost under steady load.
    "api CPU / bare -S": ("<=", 2.5),
    "worker ms": ("<=", 3.0),
    "b2b p50 / paced": ("<=", 2.0),
}


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def api_call(port: int, name: str) -> None:
    body = {"script": SCRIPTS[name], **EXTRA_FIELDS.get(name, {})}
    status, data = request(port, "POST", "/execute", json.dumps(body).encode())
    body = json.loads(data)
    if status != 200 or body["result"] != EXPECTED[name]:
        raise RuntimeError(f"API answered {status} {body}")
    if name == "chart":
        (png,) = body["files"]
        if base64.b64decode(png["content"])[:8] != PNG_SIGNATURE:
            raise RuntimeError(f"API returned no PNG: {str(png)[:200]}")


def bare_call(name: str) -> None:
    code = SCRIPTS[name] + "\nimport json\nprint(json.dumps(main()))\n"
    done = subprocess.run(
        [SANDBOX_PYTHON, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=CSV_DIR,
        env=BARE_ENV,
    )
    if json.loads(done.stdout) != EXPECTED[name]:
        raise RuntimeError(f"bare process printed {done.stdout!r}")


def timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def wait_pool_full(port: int, sizes: dict[str, int], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, data = request(port, "GET", "/healthz")
        except OSError:
            status, data = 0, b"{}"
        if status == 200:
            pool = json.loads(data).get("pool", {})
            if all(pool.get(kind, 0) >= size for kind, size in sizes.items()):
                return
        time.sleep(0.1)
    raise RuntimeError("the service's pool did not fill in time")


def burst(action: Callable[[], None], count: int, in_flight: int) -> float:
    """Requests per second for ``count`` actions with ``in_flight`` at once."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        for future in [pool.submit(action) for _ in range(count)]:
            future.result()
    return count / (time.perf_counter() - started)


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages split between their users, so a tree's
    sum does not count numpy's libraries once per jail."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mib(root_pid: int) -> float:
    """Memory (PSS) of a process and all its descendants, MiB."""
    listing = subprocess.run(
        ["ps", "-eo", "pid=,ppid="], capture_output=True, text=True, check=True
    ).stdout
    children: dict[int, list[int]] = {}
    for line in listing.splitlines():
        pid, ppid = map(int, line.split())
        children.setdefault(ppid, []).append(pid)
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += pss_kib(pid)
        stack.extend(children.get(pid, []))
    return total / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="latency samples per script")
    parser.add_argument("--burst", type=int, default=40, help="requests per burst")
    parser.add_argument("--in-flight", type=int, default=8, help="concurrent requests in a burst")
    parser.add_argument("--steady", type=int, default=60, help="back-to-back requests a round")
    parser.add_argument("--steady-rounds", type=int, default=5, help="rounds of the cost figures")
    args = parser.parse_args()

    (CSV_DIR / "in.csv").write_text(CSV_TEXT)
    shutil.copytree(FONT_CACHE_DIR, BARE_ENV["MPLCONFIGDIR"])
    settings = load_settings()
    pool_size = {
        "light": settings.light_pool_size if settings.pool_size else 0,
        "heavy": settings.pool_size,
        "chart": settings.chart_pool_size if settings.pool_size else 0,
    }
    with serve() as server:
        port = server.port
        wait_pool_full(port, pool_size)
        idle_rss = rss_mib(server.process.pid)
        latencies: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for name in SCRIPTS:
                latencies.setdefault(f"api {name}", []).append(paced(port, pool_size, name))
                latencies.setdefault(f"bare {name}", []).append(
                    timed(lambda n=name: bare_call(n))  # type: ignore[misc]
                )
        rates: dict[str, float] = {}
        for name in SCRIPTS.keys() - LATENCY_ONLY:
            wait_pool_full(port, pool_size)
            rates[f"api {name}"] = burst(partial(api_call, port, name), args.burst, args.in_flight)
            rates[f"bare {name}"] = burst(partial(bare_call, name), args.burst, args.in_flight)
        wait_pool_full(port, pool_size)
        costs = steady_costs(port, server.process.pid, pool_size, args.steady, args.steady_rounds)
        busy_rss = rss_mib(server.process.pid)

    print(f"machine: {os.cpu_count()} CPUs, {sys.platform}; pool {pool_size}")
    print(
        f"service memory (PSS) with a full idle pool: {idle_rss:.0f} MiB "
        f"(after the run: {busy_rss:.0f} MiB)"
    )
    print(f"\nlatency over {args.rounds} interleaved rounds (ms)")
    for key, values in latencies.items():
        print(
            f"  {key:12s} p50 {1000 * statistics.median(values):7.1f}   "
            f"p90 {1000 * percentile(values, 0.9):7.1f}"
        )
    print(f"\nburst: {args.burst} requests, {args.in_flight} in flight (requests/s)")
    for key, value in rates.items():
        print(f"  {key:12s} {value:7.1f}/s")
    missed = print_ratios(latencies, rates)
    missed += print_costs(costs, args.steady, args.steady_rounds)
    return 1 if missed else 0


def print_ratios(latencies: dict[str, list[float]], rates: dict[str, float]) -> int:
    """The API / bare ratios against their targets; how many targets were missed."""
    print("\nratios (API / bare)")
    failed = 0
    for name in SCRIPTS:
        ratio = statistics.median(latencies[f"api {name}"]) / statistics.median(
            latencies[f"bare {name}"]
        )
        if f"latency {name}" not in TARGETS:
            print(f"  latency {name:7s} {ratio:6.3f}  (no target: {len(CSV_TEXT)} bytes in)")
        else:
            failed += report(f"latency {name}", ratio)
        if name not in LATENCY_ONLY:
            failed += report(f"burst {name}", rates[f"api {name}"] / rates[f"bare {name}"])
    return failed


@dataclass
class Cost:
    """One way of starting hello world, measured back to back in every round."""

    machine_ms: list[float] = field(default_factory=list)  # per request, each round
    worker_ms: list[float] = field(default_factory=list)  # the API's only
    wall: list[float] = field(default_factory=list)  # seconds, every request
    # The API's only, each round: back-to-back p50 over paced p50 (seconds), where a
    # paced request starts once the pool is full again, as in the latency rounds.
    paced_p50: list[float] = field(default_factory=list)
    b2b_ratio: list[float] = field(default_factory=list)


def print_costs(costs: dict[str, Cost], count: int, rounds: int) -> int:
    """The steady-state figures, and issue 20's targets; how many were missed."""
    print(f"\ncost per request, {rounds} rounds of {count} back to back after warm-up (issue 20)")
    print("  (machine CPU from /proc/stat: refills, teardown and the kernel included;")
    print("   median over rounds, range in brackets)")
    for key, cost in costs.items():
        machine = statistics.median(cost.machine_ms)
        spread = f"[{min(cost.machine_ms):4.1f}-{max(cost.machine_ms):4.1f}]"
        worker = (
            f"worker {statistics.median(cost.worker_ms):4.1f} ms" if cost.worker_ms else " " * 14
        )
        p50, p99 = 1000 * statistics.median(cost.wall), 1000 * percentile(cost.wall, 0.99)
        print(
            f"  {key:22s} machine CPU {machine:5.1f} ms {spread}  {worker}   "
            f"wall p50 {p50:5.1f} ms  p99 {p99:5.1f} ms"
        )
    api, bare = costs["api hello"], costs["bare python -S -c pass"]
    # Each round's ratio, then their median: a noisy round moves both sides.
    cpu_ratio = statistics.median(
        a / b for a, b in zip(api.machine_ms, bare.machine_ms, strict=True)
    )
    paced_ms = 1000 * statistics.median(api.paced_p50)
    print(
        f"  (paced hello p50 {paced_ms:.1f} ms: {PACED_PER_ROUND} in each round, each once "
        "the pool is full again)"
    )
    # Back to back, every request needs a jail started since the one before, so the
    # CPUs' throughput sets the pace: the mean wall per request follows the machine
    # CPU per request over the CPUs, whatever the service's own latency.
    cpus = os.cpu_count() or 1
    print(
        f"  (back to back: mean wall {1000 * statistics.mean(api.wall):.1f} ms a request,"
        f" machine CPU over {cpus} CPUs {statistics.median(api.machine_ms) / cpus:.1f} ms)"
    )
    return (
        report("api CPU / bare -S", cpu_ratio)
        + report("worker ms", statistics.median(api.worker_ms))
        + report("b2b p50 / paced", statistics.median(api.b2b_ratio))
    )


def machine_cpu_ticks() -> int:
    """Busy CPU ticks of the whole machine so far (all but idle and iowait)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]


def process_cpu_clock(pid: int) -> int:
    """The clock id of process ``pid``'s CPU time, as clock_getcpuclockid(3) makes it
    (the kernel's CPUCLOCK_SCHED of the whole thread group, ended threads included)."""
    return (~pid << 3) | 2


def worker_cpu_seconds(master: int) -> float:
    """User + system CPU of the gunicorn worker (the master's only child), to the
    nanosecond: /proc's utime and stime are in clock ticks (10 ms), which cut a round
    of 60 hellos into steps of ~0.17 ms a request."""
    (worker,) = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return time.clock_gettime_ns(process_cpu_clock(int(worker))) / 1e9


def steady_costs(
    port: int, master: int, sizes: dict[str, int], count: int, rounds: int
) -> dict[str, Cost]:
    """Machine CPU and wall per request, back to back, for the API's hello and for a
    bare ``python -S -c pass`` and ``python -c pass`` (the jail's interpreter): what
    an instance spends under steady load, refills included. The three alternate in
    ``rounds`` rounds of ``count`` each, so that the machine's noise (which moves
    every figure by a fifth from one minute to the next) hits all three alike; each
    round also times PACED_PER_ROUND paced hellos, the back-to-back p50's baseline."""
    ticks = os.sysconf("SC_CLK_TCK")
    actions: list[tuple[str, Callable[[], None], bool]] = [
        ("api hello", lambda: api_call(port, "hello"), True),
        ("bare python -S -c pass", lambda: _bare([SANDBOX_PYTHON, "-S", "-c", "pass"]), False),
        ("bare python -c pass", lambda: _bare([SANDBOX_PYTHON, "-c", "pass"]), False),
    ]
    costs = {name: Cost() for name, _, _ in actions}
    for _ in range(rounds):
        for name, action, is_api in actions:
            time.sleep(1.0 if is_api else 0.2)  # the pool's refills of before finish
            machine_before = machine_cpu_ticks()
            worker_before = worker_cpu_seconds(master) if is_api else 0.0
            costs[name].wall += [timed(action) for _ in range(count)]
            time.sleep(0.5 if is_api else 0)  # the last refills and teardowns
            cost = costs[name]
            cost.machine_ms.append(1000 * (machine_cpu_ticks() - machine_before) / ticks / count)
            if is_api:
                cost.worker_ms.append(1000 * (worker_cpu_seconds(master) - worker_before) / count)
                samples = [paced(port, sizes, "hello") for _ in range(PACED_PER_ROUND)]
                cost.paced_p50.append(statistics.median(samples))
                b2b_p50 = statistics.median(cost.wall[-count:])
                cost.b2b_ratio.append(b2b_p50 / cost.paced_p50[-1])
    return costs


def paced(port: int, sizes: dict[str, int], name: str) -> float:
    """Seconds of one API call of script ``name``, started once the pool is full."""
    wait_pool_full(port, sizes)
    return timed(lambda: api_call(port, name))


def _bare(argv: list[str]) -> None:
    subprocess.run(argv, check=True, timeout=60)


def report(label: str, ratio: float) -> int:
    sense, bound = TARGETS[label]
    ok = ratio <= bound if sense == "<=" else ratio >= bound
    print(f"  {label:17s} {ratio:6.3f}  (target {sense} {bound})  {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
