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
V1_CONTROLLERS = ("memory", "pids", "cpu")
V2_CONTROLLERS = ("memory", "pids", "cpu")


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
        """The cgroup directories nsjail made for the jail whose init is ``pid``."""
        return [parent / f"NSJAIL.{pid}" for parent in self.parents]

    def memory_peak(self, pid: int) -> int | None:
        """Peak memory bytes of the jail's own cgroup while it exists: a figure the
        script cannot forge. (Its CPU is counted through ``track_cpu``.)"""
        if not self.parents:
            return None
        peak_file = "memory.max_usage_in_bytes" if self.mode == "v1" else "memory.peak"
        try:
            return int((self.parents[0] / f"NSJAIL.{pid}" / peak_file).read_text())
        except (OSError, ValueError):
            return None

    def track_cpu(self, pid: int) -> Path | None:
        """Start counting the CPU of the jail whose init is ``pid`` and of everything it
        starts from now on; the file to read with ``cpu_ms`` (None: cannot count).

        v2: the jail's own cpu.stat. v1: a cpuacct cgroup of ours (JAIL.<pid>) that
        the init joins at hand-over, so its children are counted too.
        """
        if self.mode == "v2" and self.parents:
            return self.parents[0] / f"NSJAIL.{pid}" / "cpu.stat"
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
        if self.cpuacct is None:
            return
        directory = self.cpuacct / f"JAIL.{pid}"
        for _ in range(250):
            try:
                directory.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)

    def oom_killed(self, pid: int) -> bool | None:
        """Whether the kernel's OOM killer acted in the jail's cgroup (None: unknown).

        Readable only while the cgroup still exists, which it does after an OOM
        kill because nsjail cannot remove it until the memory is uncharged.
        """
        if not self.parents:
            return None
        memory = self.parents[0] / f"NSJAIL.{pid}"
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
            for _ in range(250):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)

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
    for controller in V1_CONTROLLERS:
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
    wanted = " ".join(f"+{name}" for name in V2_CONTROLLERS)
    (cgroup / "cgroup.subtree_control").write_text(wanted)


def _prepare_v2(parent: str) -> CgroupSupport:
    own = Path(Path("/proc/self/cgroup").read_text().strip().split("::", 1)[1] or "/")
    base = CGROUP_ROOT / own.relative_to("/")
    available = set((base / "cgroup.controllers").read_text().split())
    missing = [name for name in V2_CONTROLLERS if name not in available]
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
        if all((CGROUP_ROOT / name / "tasks").exists() for name in V1_CONTROLLERS):
            support = _prepare_v1(parent)
            support.sweep()
            return support
        reason = "no memory, pids and cpu cgroup controllers are mounted"
    except OSError as exc:
        reason = f"cgroups cannot be used: {exc.strerror or exc}"
    return CgroupSupport("none", (), reason)
