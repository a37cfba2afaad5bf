"""How much memory this host gives the service, and the jails' budget derived from it.

The jails' memory budget (pyexec/admission.py) defaults to what the concurrency
implies: 8 jails of 256 MB, or two of the largest, 2 GB. On a host smaller than that
(a 1 GiB instance) the budget would promise memory that is not there, and only the
kernel's OOM killer would keep the promise. So the default budget is also capped by
what the host has: the service's cgroup memory limit where there is one, else
MemTotal, minus what the service and its idle pool of jails hold.

A host too small for that cap to leave room for the largest request lowers the
largest request (PYEXEC_MAX_MEMORY_MB), never below the default one, and says so at
start-up; an explicit PYEXEC_MAX_MEMORY_MB that does not fit is a start-up error
(pyexec/settings.py), and an explicit PYEXEC_MEMORY_BUDGET_MB is taken as given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# What the service itself holds (the worker, its imports and buffers), measured at
# 40 MB idle and 50-60 MB under load (hosts/README.md), with room.
SERVICE_RESERVE_MB = 96
# What an idle pooled jail holds, by pool, with room for nsjail's own process:
# measured (PSS of the jail's runner, 2026-11-28) at 5.6 MB for the runner alone,
# 49.5 MB with numpy and pandas pre-imported, 79.3 MB with matplotlib as well.
POOLED_JAIL_MB = {"light": 12, "heavy": 64, "chart": 96}
# A cgroup v1 memory.limit_in_bytes at or above this means "no limit".
_UNLIMITED_BYTES = 1 << 60


@dataclass(frozen=True)
class HostMemory:
    """The memory this host gives the service, and where the figure came from."""

    mb: int
    source: str  # "cgroup" (the service's own memory limit) or "meminfo" (MemTotal)


def host_memory(
    proc: Path = Path("/proc"), cgroup_root: Path = Path("/sys/fs/cgroup")
) -> HostMemory:
    """The smaller of MemTotal and the memory limit of the service's own cgroup (and
    its ancestors), v2 or v1."""
    total = _mem_total_bytes(proc / "meminfo")
    limit = _cgroup_limit_bytes(proc / "self" / "cgroup", cgroup_root)
    if limit is not None and limit < total:
        return HostMemory(limit // (1024 * 1024), "cgroup")
    return HostMemory(total // (1024 * 1024), "meminfo")


def reserve_mb(pool_sizes: dict[str, int]) -> int:
    """What the service and its idle pool hold, by the estimates above."""
    return SERVICE_RESERVE_MB + sum(
        POOLED_JAIL_MB[name] * size for name, size in pool_sizes.items()
    )


def _mem_total_bytes(meminfo: Path) -> int:
    for line in meminfo.read_text(encoding="ascii", errors="replace").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"{meminfo} has no MemTotal line")


def _cgroup_limit_bytes(self_cgroup: Path, root: Path) -> int | None:
    """The lowest memory limit on the path of the service's cgroup, or None."""
    try:
        lines = self_cgroup.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        return None
    limits: list[int] = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            limits += _limits_along(root, path, "memory.max")
        elif "memory" in controllers.split(","):
            limits += _limits_along(root / "memory", path, "memory.limit_in_bytes")
    return min(limits, default=None)


def _limits_along(mount: Path, path: str, name: str) -> list[int]:
    """The limits in ``name`` from the cgroup at ``path`` up to the mount's root."""
    found: list[int] = []
    directory = mount / path.lstrip("/")
    while True:
        try:
            raw = (directory / name).read_text(encoding="ascii").strip()
        except OSError:
            raw = "max"
        if raw != "max" and raw.isdigit() and int(raw) < _UNLIMITED_BYTES:
            found.append(int(raw))
        if directory == mount or mount not in directory.parents:
            return found
        directory = directory.parent
