"""The worker's CPU per hello request of two checkouts, measured at the same time.

    git worktree add /tmp/base <commit>
    .venv/bin/python bench/compare.py /tmp/base [--pairs 4] [--rounds 2] [--requests 150]

Starts the service of BASE (A) and of this checkout (B) side by side on loopback
ports, waits for both pools to fill, then sends hello requests back to back,
alternating between the two servers (A, B, B, A, ...), in rounds. Each round
reads both gunicorn workers' CPU from /proc, so whatever the machine does in that
minute hits both alike: the per-round ratio B/A is steady where a figure measured
alone moves by a fifth (docs/performance.md, issue 20).

One pair of services is not enough: the same commit on both sides gave a median
B/A of 1.018 in one run and 0.955-0.966 in three others, 8-12 rounds each, and the
side started second came out cheaper in all three, whichever checkout it served.
Hence ``--pairs``: each pair is started afresh, A first in even pairs and B first in
odd ones, and measured for ``--rounds`` rounds; the median is over every round of
every pair.

Both services share the host's cgroups and jail ids; that is fine for a
measurement, not for serving. Prints each round and the median ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench
from pyexec.settings import load_settings
from tests.live_server import serve, serve_checkout

WARM_UP_REQUESTS = 30


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="the other checkout (A)")
    parser.add_argument("--pairs", type=int, default=4, help="services started afresh")
    parser.add_argument("--rounds", type=int, default=2, help="per pair")
    parser.add_argument("--requests", type=int, default=150, help="per server per round")
    args = parser.parse_args()
    ratios: list[float] = []
    for pair in range(args.pairs):
        base_first = pair % 2 == 0
        pair_ratios = measure_pair(args.base.resolve(), base_first, args.rounds, args.requests)
        print(
            f"pair {pair} ({'A' if base_first else 'B'} started first):"
            f" B/A {' '.join(f'{ratio:.3f}' for ratio in pair_ratios)}",
            flush=True,
        )
        ratios += pair_ratios
    print(
        f"B/A median {statistics.median(ratios):.3f} over {len(ratios)} rounds"
        f" of {args.pairs} pairs (range {min(ratios):.3f}-{max(ratios):.3f})"
    )
    return 0


def measure_pair(base: Path, base_first: bool, rounds: int, requests: int) -> list[float]:
    """Start BASE's service and this one's (in that order if ``base_first``), and
    return B/A for each round."""
    settings = load_settings()
    sizes = {
        "light": settings.light_pool_size,
        "heavy": settings.pool_size,
        "chart": settings.chart_pool_size,
    }
    ratios: list[float] = []
    with contextlib.ExitStack() as stack:
        if base_first:
            other = stack.enter_context(serve_checkout(base))
            this = stack.enter_context(serve())
        else:
            this = stack.enter_context(serve())
            other = stack.enter_context(serve_checkout(base))
        servers = ((other.process.pid, other.port), (this.process.pid, this.port))
        for _master, port in servers:
            bench.wait_pool_full(port, sizes)
            for _ in range(WARM_UP_REQUESTS):
                bench.api_call(port, "hello")
        time.sleep(1.0)
        for _ in range(rounds):
            before = [bench.worker_cpu_seconds(master) for master, _port in servers]
            for index in range(requests):
                for _master, port in servers if index % 2 == 0 else servers[::-1]:
                    bench.api_call(port, "hello")
            time.sleep(0.3)  # teardowns of the last requests
            after = [bench.worker_cpu_seconds(master) for master, _port in servers]
            base_ms, this_ms = (
                1000 * (end - start) / requests for start, end in zip(before, after, strict=True)
            )
            ratios.append(this_ms / base_ms)
            print(
                f"  worker CPU per hello  A {base_ms:.2f} ms  B {this_ms:.2f} ms"
                f"  B/A {ratios[-1]:.3f}",
                flush=True,
            )
    return ratios


if __name__ == "__main__":
    sys.exit(main())
