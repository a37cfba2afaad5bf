"""Inside the guest: start the service as `make run` does, watch it, stop it, and
find what it left behind.

The service is ``scripts/serve`` (gunicorn + gunicorn.conf.py with the project's
.venv), on the guest's loopback. The harness protects itself from the guest's OOM
killer (oom_score_adj -1000, set by the init script); the service must not inherit
that, so it starts with the default 0, exactly as it would on a real host.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from client import PORT, call

PROJECT = Path(__file__).resolve().parent.parent
PF_KTHREAD = 0x00200000


def start(log: Path, extra_env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``scripts/serve`` on 127.0.0.1:PORT with ``extra_env``, its output appended to
    ``log``."""
    with log.open("ab") as sink:
        return subprocess.Popen(
            ["/bin/sh", "-c", "echo 0 > /proc/self/oom_score_adj && exec scripts/serve"],
            cwd=PROJECT,
            env={**os.environ, "HOST": "127.0.0.1", "PORT": str(PORT), **extra_env},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def wait_healthy(process: subprocess.Popen[bytes], timeout: float) -> tuple[float, object]:
    """Poll /healthz until 200: (seconds it took, the last answer). Gives up when
    the service exits or ``timeout`` passes (then the answer is not a 200)."""
    started = time.monotonic()
    answer: object = "never asked"
    while time.monotonic() - started < timeout and process.poll() is None:
        answer = call("GET", "/healthz", timeout=5)
        if isinstance(answer, tuple) and answer[0] == 200:
            break
        time.sleep(0.5)
    return time.monotonic() - started, answer


def wait_pool(sizes: dict[str, int], timeout: float) -> tuple[float, object]:
    """Poll /healthz until its pool holds ``sizes`` ready jails: (seconds, last pool).
    The load starts from the steady state a real instance reaches after start-up."""
    started = time.monotonic()
    pool: object = None
    while time.monotonic() - started < timeout:
        answer = call("GET", "/healthz", timeout=5)
        if isinstance(answer, tuple) and isinstance(answer[1], dict):
            pool = answer[1].get("pool", {})
            if isinstance(pool, dict) and all(pool.get(k, 0) >= n for k, n in sizes.items()):
                break
        time.sleep(0.5)
    return time.monotonic() - started, pool


def stop(process: subprocess.Popen[bytes], grace: float = 60) -> str:
    """SIGTERM (the graceful shutdown), SIGKILL after ``grace``; how it ended."""
    if process.poll() is not None:
        return f"had already exited with {process.returncode}"
    process.send_signal(signal.SIGTERM)
    try:
        return f"exited with {process.wait(timeout=grace)} after SIGTERM"
    except subprocess.TimeoutExpired:
        process.kill()
        return f"killed: still running {grace:.0f} s after SIGTERM"


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    return [name, *text.rsplit(")", 1)[1].split()]


def processes() -> dict[int, tuple[int, str]]:
    """Every user-space process of the guest: pid -> (parent pid, name)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat is None or int(stat[7]) & PF_KTHREAD:  # field 9: flags
            continue
        found[int(entry.name)] = (int(stat[2]), stat[0])
    return found


def descendants(root: int, table: dict[int, tuple[int, str]]) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, []))
    return out


def pss_kib(pid: int) -> int:
    """Proportional set size of one process (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def mem_available_mib() -> float:
    """The guest's MemAvailable."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def runnable() -> int:
    """Tasks runnable right now, guest-wide (the 4th field of /proc/loadavg)."""
    return int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])


def leftover_processes() -> list[str]:
    """Processes that should not exist once the service has stopped: anything but
    the init script and the harness (and the harness's own helpers)."""
    me = os.getpid()
    table = processes()
    ours = set(descendants(me, table)) | {1}
    return [
        f"{pid} {name} (parent {parent})"
        for pid, (parent, name) in table.items()
        if pid not in ours
    ]


def leftover_cgroups(root: Path | None) -> tuple[list[str], list[str]]:
    """(jail cgroups NSJAIL.* and JAIL.* still present, other cgroups the service made)
    in the cgroup2 hierarchy at ``root`` (None: there is none)."""
    if root is None or not (root / "cgroup.controllers").exists():
        return [], []
    jails, others = [], []
    for directory in sorted(p for p in root.rglob("*") if p.is_dir()):
        name = str(directory.relative_to(root))
        if directory.name.startswith(("NSJAIL.", "JAIL.")):
            jails.append(name)
        else:
            others.append(name)
    return jails, others
