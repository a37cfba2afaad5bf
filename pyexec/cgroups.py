"""Find the cgroup hierarchy nsjail can use, prepare our parent cgroup, say which limits hold.

nsjail puts each jail in a cgroup of its own under a parent that must exist.
With cgroup v1 we create ``<parent>`` under the memory, pids and cpu controllers.
With cgroup v2 the parent must be a cgroup with no processes of its own whose
controllers are enabled; in a container the service itself sits in the root
cgroup, so it first moves itself into a leaf (``<parent>-service``).
Without usable cgroups the memory limit falls back to RLIMIT_AS and the process
limit to RLIMIT_NPROC (per uid, so shared by concurrent jails): weaker, and
reported by ``/healthz``.
"""

from __future__ import annotations

import contextlib
import errno
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# The controllers every jail is limited by, on v1 and v2 alike.
CONTROLLERS = ("memory", "pids", "cpu")
RMDIR_TRIES = 250
RMDIR_PAUSE_SECONDS = 0.02


def _rmdir_patiently(directory: Path) -> None:
    """Remove an empty cgroup, retrying for a few seconds: after its processes are
    gone the kernel may still be uncharging its memory (EBUSY)."""
    for _ in range(RMDIR_TRIES):
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(RMDIR_PAUSE_SECONDS)


@dataclass(frozen=True)
class CgroupSupport:
    """Which cgroup mode the jails use, and the nsjail flags that select it."""

    mode: str  # "v1", "v2" or "none"
    nsjail_args: tuple[str, ...]
    reason: str = ""
    # Where nsjail makes each jail's cgroup: NSJAIL.<pid of the jail's init> in each.
    parents: tuple[Path, ...] = ()
    # cgroup v1 only: our own cpuacct parent, since nsjail does not set up cpuacct.
    cpuacct: Path | None = None

    @property
    def enforced(self) -> bool:
        """True when memory, pids and CPU are limited per jail by a cgroup."""
        return self.mode != "none"

    def jail_dirs(self, pid: int) -> list[Path]:
        """The cgroup directories nsjail made for the jail whose init is ``pid``
        (the memory controller's first)."""
        return [parent / f"NSJAIL.{pid}" for parent in self.parents]

    def _memory_dir(self, pid: int) -> Path | None:
        dirs = self.jail_dirs(pid)
        return dirs[0] if dirs else None

    def memory_peak(self, pid: int) -> int | None:
        """Peak memory bytes of the jail's own cgroup while it exists: a figure the
        script cannot forge. (Its CPU is counted through ``track_cpu``.)"""
        memory = self._memory_dir(pid)
        if memory is None:
            return None
        peak_file = "memory.max_usage_in_bytes" if self.mode == "v1" else "memory.peak"
        try:
            return int((memory / peak_file).read_text())
        except (OSError, ValueError):
            return None

    def track_cpu(self, pid: int) -> Path | None:
        """Start counting the CPU of the jail whose init is ``pid`` and of everything it
        starts from now on; the file to read with ``cpu_ms`` (None: cannot count).

        v2: the jail's own cpu.stat. v1: a cpuacct cgroup of ours (JAIL.<pid>) that
        the init joins at hand-over, so its children are counted too.
        """
        memory = self._memory_dir(pid)
        if self.mode == "v2" and memory is not None:
            return memory / "cpu.stat"  # v2: one directory holds every controller
        if self.cpuacct is None:
            return None
        directory = self.cpuacct / f"JAIL.{pid}"
        try:
            directory.mkdir(exist_ok=True)
            (directory / "cgroup.procs").write_text(str(pid))
        except OSError:
            return None
        return directory / "cpuacct.usage"

    @staticmethod
    def cpu_ms(handle: Path) -> float | None:
        """CPU milliseconds counted so far in a ``track_cpu`` file."""
        try:
            text = handle.read_text()
        except OSError:
            return None
        if handle.name == "cpuacct.usage":
            return int(text) / 1e6  # nanoseconds
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1000
        return None

    def untrack_cpu(self, pid: int) -> None:
        """Remove our cpuacct cgroup once the jail is gone (v1)."""
        if self.cpuacct is not None:
            _rmdir_patiently(self.cpuacct / f"JAIL.{pid}")

    def oom_killed(self, pid: int) -> bool | None:
        """Whether the kernel's OOM killer acted in the jail's cgroup (None: unknown).

        Readable only while the cgroup still exists, which it does after an OOM
        kill because nsjail cannot remove it until the memory is uncharged.
        """
        memory = self._memory_dir(pid)
        if memory is None:
            return None
        name = "memory.oom_control" if self.mode == "v1" else "memory.events"
        try:
            text = (memory / name).read_text()
        except OSError:
            return None
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value) > 0
        return None

    def remove_jail(self, pid: int) -> None:
        """Remove the jail's cgroups if nsjail left them (it cannot after an OOM kill
        or when it is killed itself). Waits briefly for the memory to be uncharged."""
        for directory in self.jail_dirs(pid):
            _rmdir_patiently(directory)

    def sweep(self) -> int:
        """Remove leftover jail cgroups whose jail is gone; how many.

        A directory is named after its jail's init pid; while that process lives as
        nsjail's child (even before it has joined the cgroup) the directory is left
        alone. A pid reused by an unrelated process does not count.
        """
        removed = 0
        for parent, pattern in (
            *((parent, "NSJAIL.*") for parent in self.parents),
            *(((self.cpuacct, "JAIL.*"),) if self.cpuacct else ()),
        ):
            for directory in parent.glob(pattern):
                pid = directory.name.partition(".")[2]
                if pid.isdigit() and is_jail_init(int(pid)):
                    continue
                try:
                    if (directory / "cgroup.procs").read_text().strip():
                        continue
                    directory.rmdir()
                    removed += 1
                except OSError:
                    continue
        return removed


@dataclass(frozen=True)
class CpuMeter:
    """CPU milliseconds a jail has used since ``begin`` (from a ``track_cpu`` file)."""

    handle: Path | None
    start_ms: float = 0.0

    @classmethod
    def begin(cls, handle: Path | None) -> CpuMeter:
        """Start counting now; a meter without a handle counts nothing."""
        if handle is None:
            return cls(None)
        return cls(handle, CgroupSupport.cpu_ms(handle) or 0.0)

    def used_ms(self) -> float | None:
        """CPU milliseconds since ``begin``, or None when they cannot be read."""
        if self.handle is None:
            return None
        now = CgroupSupport.cpu_ms(self.handle)
        return None if now is None else now - self.start_ms


def is_jail_init(pid: int) -> bool:
    """True when ``pid`` is alive and its parent is an nsjail process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        return Path(f"/proc/{parent}/comm").read_text().strip() == "nsjail"
    except (OSError, ValueError, IndexError):
        return False


def _prepare_v1(parent: str) -> CgroupSupport:
    args: list[str] = []
    parents = []
    for controller in CONTROLLERS:
        mount = CGROUP_ROOT / controller
        (mount / parent).mkdir(exist_ok=True)
        parents.append(mount / parent)
        flag = "mem" if controller == "memory" else controller
        args += [f"--cgroup_{flag}_mount", str(mount), f"--cgroup_{flag}_parent", parent]
    # cpuacct, mounted apart from cpu (or with it), counts a whole jail's CPU.
    cpuacct: Path | None = CGROUP_ROOT / "cpuacct" / parent
    try:
        cpuacct.mkdir(exist_ok=True)  # type: ignore[union-attr]
    except OSError:
        cpuacct = None
    return CgroupSupport("v1", tuple(args), parents=tuple(parents), cpuacct=cpuacct)


def _enable_v2_controllers(cgroup: Path) -> None:
    wanted = " ".join(f"+{name}" for name in CONTROLLERS)
    (cgroup / "cgroup.subtree_control").write_text(wanted)


def _prepare_v2(parent: str) -> CgroupSupport:
    own = Path(Path("/proc/self/cgroup").read_text().strip().split("::", 1)[1] or "/")
    base = CGROUP_ROOT / own.relative_to("/")
    available = set((base / "cgroup.controllers").read_text().split())
    missing = [name for name in CONTROLLERS if name not in available]
    if missing:
        raise OSError(f"cgroup v2 controllers not delegated here: {', '.join(missing)}")
    try:
        _enable_v2_controllers(base)
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise
        # "No internal processes": move every process of our cgroup into a leaf.
        leaf = base / f"{parent}-service"
        leaf.mkdir(exist_ok=True)
        for pid in (base / "cgroup.procs").read_text().split():
            # A process may have exited meanwhile, or be a kernel thread.
            with contextlib.suppress(OSError):
                (leaf / "cgroup.procs").write_text(pid)
        _enable_v2_controllers(base)
    jails = base / parent
    jails.mkdir(exist_ok=True)
    _enable_v2_controllers(jails)
    return CgroupSupport(
        "v2", ("--use_cgroupv2", "--cgroupv2_mount", str(jails)), parents=(jails,)
    )


def prepare_cgroups(parent: str) -> CgroupSupport:
    """Prepare the parent cgroup for jails (and sweep leftovers); never raises."""
    try:
        if (CGROUP_ROOT / "cgroup.controllers").exists():
            support = _prepare_v2(parent)
            support.sweep()
            return support
        if all((CGROUP_ROOT / name / "tasks").exists() for name in CONTROLLERS):
            support = _prepare_v1(parent)
            support.sweep()
            return support
        reason = "no memory, pids and cpu cgroup controllers are mounted"
    except OSError as exc:
        reason = f"cgroups cannot be used: {exc.strerror or exc}"
    return CgroupSupport("none", (), reason)
