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
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--requests", type=int, default=150, help="per server per round")
    args = parser.parse_args()
    settings = load_settings()
    sizes = {
        "light": settings.light_pool_size,
        "heavy": settings.pool_size,
        "chart": settings.chart_pool_size,
    }
    with serve_checkout(args.base.resolve()) as base, serve() as this:
        servers = ((base.process.pid, base.port), (this.process.pid, this.port))
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
