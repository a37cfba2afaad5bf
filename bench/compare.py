"""The worker's CPU per hello request of two checkouts, measured at the same time.

    git worktree add /tmp/base <commit>
    .venv/bin/python bench/compare.py /tmp/base [--rounds 8] [--requests 150]

Starts the service of BASE (A) and of this checkout (B) side by side on loopback
ports, waits for both pools to fill, then sends hello requests back to back,
alternating between the two servers (A, B, B, A, ...), in rounds. Each round
reads both gunicorn workers' CPU from /proc, so whatever the machine does in that
minute hits both alike: the per-round ratio B/A is steady where a figure measured
alone moves by a fifth (docs/performance.md, issue 20). Two checkouts of the same
commit give ~1.00 +- 0.03, the size of the smallest change it can show.

Both services share the host's cgroups and jail ids; that is fine for a
measurement, not for serving. Prints each round and the median ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench
from pyexec.settings import load_settings

WARM_UP_REQUESTS = 30


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(tree: Path) -> Iterator[tuple[int, int]]:
    """``tree``'s scripts/serve on a free port: (gunicorn master's pid, port); always
    stopped (SIGTERM, its graceful shutdown) at the end."""
    port = free_port()
    venv = bench.PROJECT_DIR / ".venv" / "bin"
    process = subprocess.Popen(
        [str(tree / "scripts" / "serve")],
        cwd=tree,
        env={
            **os.environ,
            "PATH": f"{venv}:{os.environ['PATH']}",
            "HOST": "127.0.0.1",
            "PORT": str(port),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process.pid, port
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="the other checkout (A)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--requests", type=int, default=150, help="per server per round")
    args = parser.parse_args()
    settings = load_settings()
    sizes = {
        "light": settings.light_pool_size,
        "heavy": settings.pool_size,
        "chart": settings.chart_pool_size,
    }
    with serving(args.base.resolve()) as base, serving(bench.PROJECT_DIR) as this:
        servers = (base, this)
        for _master, port in servers:
            bench.wait_pool_full(port, sizes)
            for _ in range(WARM_UP_REQUESTS):
                bench.api_call(port, "hello")
        time.sleep(1.0)
        ratios: list[float] = []
        for round_number in range(args.rounds):
            before = [bench.worker_cpu_seconds(master) for master, _port in servers]
            for index in range(args.requests):
                for _master, port in servers if index % 2 == 0 else servers[::-1]:
                    bench.api_call(port, "hello")
            time.sleep(0.3)  # teardowns of the last requests
            after = [bench.worker_cpu_seconds(master) for master, _port in servers]
            base_ms, this_ms = (
                1000 * (end - start) / args.requests
                for start, end in zip(before, after, strict=True)
            )
            ratios.append(this_ms / base_ms)
            print(
                f"round {round_number}: worker CPU per hello  A {base_ms:.2f} ms"
                f"  B {this_ms:.2f} ms  B/A {ratios[-1]:.3f}",
                flush=True,
            )
    print(f"B/A median {statistics.median(ratios):.3f} over {args.rounds} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
