"""Find the cgroup hierarchy nsjail can use, prepare our parent cgroup, say which limits hold.

nsjail puts each jail in a cgroup of its own under a parent that must exist.
With cgroup v1 we create ``<parent>`` under the memory, pids and cpu controllers.
With cgroup v2 the parent must be a cgroup with no processes of its own whose
controllers are enabled; in a container the service itself sits in the root
cgroup, so it first moves itself into a leaf (``<parent>-service``).
When ``/sys/fs/cgroup`` offers no usable hierarchy (none mounted, or read-only as
in a container started with ``--cap-add SYS_ADMIN`` rather than ``--privileged``)
and the service is root with CAP_SYS_ADMIN, it tries, in order, a cgroup2 mount of
its own at ``/run/pyexec/cgroup2`` (in a container with a private cgroup namespace:
the container's own subtree) and a read-write remount of ``/sys/fs/cgroup``. Either
is used only when a probe cgroup made as nsjail makes a jail's (limits written, a
process moved in) works; ``source`` says which hierarchy is used.
Without usable cgroups the memory limit falls back to RLIMIT_AS and the process
limit to RLIMIT_NPROC (per uid, so shared by concurrent jails): weaker, and
reported by ``/healthz``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from pyexec.kernelfiles import KernelFile, open_kernel_file, read_kernel_file, write_kernel_file

CGROUP_ROOT = Path("/sys/fs/cgroup")
SELF_CGROUP = Path("/proc/self/cgroup")
MOUNTINFO = Path("/proc/self/mountinfo")
# Where the service mounts a cgroup2 hierarchy of its own when CGROUP_ROOT is unusable.
OWN_MOUNT = Path("/run/pyexec/cgroup2")
CAP_SYS_ADMIN = 21
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096
MNT_DETACH = 2
# mountinfo writes a space in a mount point as \\040, and so on.
OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
# Per-mount flags a remount must keep (a locked one could not be cleared anyway).
KEPT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC}
# The controllers every jail is limited by, on v1 and v2 alike.
CONTROLLERS = ("memory", "pids", "cpu")
RMDIR_TRIES = 250
RMDIR_PAUSE_SECONDS = 0.02


def _rmdir_patiently(directory: str | Path, tries: int | None = None) -> bool:
    """Remove an empty cgroup, retrying for a few seconds (``tries`` times, by
    default RMDIR_TRIES): after its processes are gone the kernel may still be
    uncharging its memory (EBUSY). Whether it is gone."""
    tries = RMDIR_TRIES if tries is None else tries
    for attempt in range(tries):
        try:
            os.rmdir(directory)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if attempt + 1 < tries:
                time.sleep(RMDIR_PAUSE_SECONDS)
    return False


@dataclass(frozen=True)
class CgroupSupport:
    """Which cgroup mode the jails use, and the nsjail flags that select it."""

    mode: str  # "v1", "v2" or "none"
    nsjail_args: tuple[str, ...]
    reason: str = ""
    # Which hierarchy: "host" (CGROUP_ROOT as found), "own_mount" (a cgroup2 mount of
    # the service's own at OWN_MOUNT), "remount" (CGROUP_ROOT remounted read-write),
    # or "none".
    source: str = "host"
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

    def _jail_file(self, pid: int, name: str) -> str | None:
        """A file of the jail's memory cgroup, as a string: pathlib's joins cost more
        than the reads, once per jail (issue 20)."""
        return f"{self.parents[0]}/NSJAIL.{pid}/{name}" if self.parents else None

    def leaves_jail_dirs(self, pid: int) -> bool:
        """Whether any of the jail's cgroup directories still exists (nsjail removes
        them as it exits, but cannot after an OOM kill or when it is killed)."""
        return any(os.path.exists(f"{parent}/NSJAIL.{pid}") for parent in self.parents)

    def memory_peak_file(self, pid: int) -> KernelFile | None:
        """The jail's peak-memory file, held open for ``memory_peak`` (None: no
        cgroup, or it is gone)."""
        path = self._jail_file(
            pid, "memory.max_usage_in_bytes" if self.mode == "v1" else "memory.peak"
        )
        return None if path is None else open_kernel_file(path)

    @staticmethod
    def memory_peak(peak_file: KernelFile) -> int | None:
        """Peak memory bytes of the jail's own cgroup while it exists: a figure the
        script cannot forge. (Its CPU is counted through ``track_cpu``.)"""
        try:
            return int(peak_file.read())
        except (OSError, ValueError):
            return None

    def track_cpu(self, pid: int) -> KernelFile | None:
        """Start counting the CPU of the jail whose init is ``pid`` and of everything it
        starts from now on; the file to read with ``cpu_ms``, held open (None: cannot
        count).

        v2: the jail's own cpu.stat. v1: a cpuacct cgroup of ours (JAIL.<pid>) that
        the init joins at hand-over, so its children are counted too.
        """
        if self.mode == "v2":
            stat = self._jail_file(pid, "cpu.stat")  # v2: one directory, every controller
            return None if stat is None else open_kernel_file(stat)
        if self.cpuacct is None:
            return None
        directory = f"{self.cpuacct}/JAIL.{pid}"
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(directory)
            write_kernel_file(f"{directory}/cgroup.procs", str(pid))
        except OSError:
            return None
        return open_kernel_file(f"{directory}/cpuacct.usage")

    @staticmethod
    def cpu_ms(handle: KernelFile) -> float | None:
        """CPU milliseconds counted so far in a ``track_cpu`` file."""
        try:
            text = handle.read()
        except OSError:
            return None
        if handle.path.endswith("/cpuacct.usage"):
            return int(text) / 1e6  # nanoseconds
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1000
        return None

    def untrack_cpu(self, pid: int, patiently: bool = True) -> bool:
        """Remove our cpuacct cgroup once the jail is gone (v1); whether it is gone.
        Not ``patiently``: one try, for a caller that hands a failure to the reaper."""
        if self.cpuacct is None:
            return True
        return _rmdir_patiently(f"{self.cpuacct}/JAIL.{pid}", None if patiently else 1)

    def oom_killed(self, pid: int) -> bool | None:
        """Whether the kernel's OOM killer acted in the jail's cgroup (None: unknown).

        Readable only while the cgroup still exists, which it does after an OOM
        kill because nsjail cannot remove it until the memory is uncharged.
        """
        path = self._jail_file(pid, "memory.oom_control" if self.mode == "v1" else "memory.events")
        if path is None:
            return None
        try:
            text = read_kernel_file(path)
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

    handle: KernelFile | None
    start_ms: float = 0.0

    @classmethod
    def begin(cls, handle: KernelFile | None) -> CpuMeter:
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


def _prepare_v1(root: Path, parent: str) -> CgroupSupport:
    args: list[str] = []
    parents = []
    for controller in CONTROLLERS:
        mount = root / controller
        (mount / parent).mkdir(exist_ok=True)
        parents.append(mount / parent)
        flag = "mem" if controller == "memory" else controller
        args += [f"--cgroup_{flag}_mount", str(mount), f"--cgroup_{flag}_parent", parent]
    # cpuacct, mounted apart from cpu (or with it), counts a whole jail's CPU.
    cpuacct: Path | None = root / "cpuacct" / parent
    try:
        cpuacct.mkdir(exist_ok=True)  # type: ignore[union-attr]
    except OSError:
        cpuacct = None
    return CgroupSupport("v1", tuple(args), parents=tuple(parents), cpuacct=cpuacct)


def _enable_v2_controllers(cgroup: Path) -> None:
    wanted = " ".join(f"+{name}" for name in CONTROLLERS)
    (cgroup / "cgroup.subtree_control").write_text(wanted)


def _prepare_v2(root: Path, parent: str) -> CgroupSupport:
    own = Path(SELF_CGROUP.read_text().strip().split("::", 1)[1] or "/")
    base = root / own.relative_to("/")
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


def _prepare_at(root: Path, parent: str) -> CgroupSupport:
    """The hierarchy at ``root`` prepared for jails, or mode none with the reason."""
    try:
        if (root / "cgroup.controllers").exists():
            return _prepare_v2(root, parent)
        if all((root / name / "tasks").exists() for name in CONTROLLERS):
            return _prepare_v1(root, parent)
        reason = "no memory, pids and cpu cgroup controllers are mounted"
    except OSError as exc:
        reason = f"cgroups cannot be used: {exc.strerror or exc}"
    return CgroupSupport("none", (), reason, source="none")


# What a jail's cgroup gets from nsjail (a limit per controller), per mode.
PROBE_LIMITS = {
    "v2": (("memory.max", "268435456"), ("pids.max", "64"), ("cpu.max", "100000 100000")),
    "v1": (
        ("memory.limit_in_bytes", "268435456"),
        ("pids.max", "64"),
        ("cpu.cfs_quota_us", "100000"),
    ),
}


def probe(support: CgroupSupport) -> None:
    """Make a cgroup where nsjail would make a jail's, write a limit of each
    controller and move a process into it, as nsjail does; raise OSError saying what
    failed. Everything it made is removed."""
    probes = support.jail_dirs(0)  # NSJAIL.0: no jail's init is ever pid 0
    limits = PROBE_LIMITS[support.mode]
    process = subprocess.Popen(["sleep", "30"], stdin=subprocess.DEVNULL)
    try:
        for index, directory in enumerate(probes):
            directory.mkdir(exist_ok=True)
            for name, value in limits if support.mode == "v2" else (limits[index],):
                (directory / name).write_text(value)
            (directory / "cgroup.procs").write_text(str(process.pid))
    finally:
        process.kill()
        process.wait()
        for directory in probes:
            _rmdir_patiently(directory)


def _mount(source: str | None, target: Path, fstype: str | None, flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    encoded = [None if value is None else value.encode() for value in (source, fstype)]
    if libc.mount(encoded[0], str(target).encode(), encoded[1], ctypes.c_ulong(flags), None):
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(target))


def _unmount(target: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.umount2(str(target).encode(), MNT_DETACH)


def mounts() -> list[tuple[Path, str, set[str]]]:
    """(mount point, filesystem type, per-mount options) of each mount we see."""
    found = []
    for line in MOUNTINFO.read_text().splitlines():
        fields, _, rest = line.partition(" - ")
        parts = fields.split()
        point = OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), parts[4])
        found.append((Path(point), rest.split()[0], set(parts[5].split(","))))
    return found


def may_mount() -> bool:
    """True when this process is root with CAP_SYS_ADMIN (it may mount)."""
    if os.geteuid() != 0:
        return False
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_SYS_ADMIN & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def _use(root: Path, parent: str, source: str) -> CgroupSupport:
    """The hierarchy at ``root`` if a jail could use it; OSError saying why not."""
    support = _prepare_at(root, parent)
    if not support.enforced:
        raise OSError(support.reason)
    try:
        probe(support)
    except OSError as exc:
        raise OSError(f"a jail's cgroup cannot be used: {exc.strerror or exc}") from None
    support.sweep()
    return replace(support, source=source)


def own_mount(parent: str) -> CgroupSupport:
    """A cgroup2 hierarchy of our own at OWN_MOUNT (one already there is reused)."""
    ours = not any(point == OWN_MOUNT and kind == "cgroup2" for point, kind, _ in mounts())
    if ours:
        OWN_MOUNT.mkdir(parents=True, exist_ok=True)
        _mount("cgroup2", OWN_MOUNT, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    try:
        return _use(OWN_MOUNT, parent, "own_mount")
    except OSError:
        if ours:
            _unmount(OWN_MOUNT)
        raise


def _remount_all(targets: list[tuple[Path, set[str]]], flags: int) -> None:
    for point, options in targets:
        kept = sum(flag for name, flag in KEPT_FLAGS.items() if name in options)
        _mount(None, point, None, MS_REMOUNT | MS_BIND | kept | flags)


def remount(parent: str) -> CgroupSupport:
    """The cgroup mounts jails need remounted read-write (each mount's own flag, as a
    container runtime sets it): a cgroup2 CGROUP_ROOT, or v1's memory, pids, cpu and
    cpuacct mounts under it; never another controller (devices, say). Put back
    read-only if a jail could not use them."""
    wanted = {CGROUP_ROOT, *(CGROUP_ROOT / name for name in (*CONTROLLERS, "cpuacct"))}
    wanted = {path.resolve() for path in wanted}  # cpu -> cpu,cpuacct and the like
    targets = [
        (point, options)
        for point, kind, options in mounts()
        if kind in ("cgroup", "cgroup2") and point in wanted and "ro" in options
    ]
    if not targets:
        raise OSError(f"no read-only cgroup mount at {CGROUP_ROOT} for jails")
    _remount_all(targets, 0)
    try:
        return _use(CGROUP_ROOT, parent, "remount")
    except OSError:
        with contextlib.suppress(OSError):
            _remount_all(targets, MS_RDONLY)
        raise


Attempt = Callable[[str], CgroupSupport]


def prepare_cgroups(
    parent: str, mount: bool = True, attempts: tuple[tuple[str, Attempt], ...] | None = None
) -> CgroupSupport:
    """Prepare the parent cgroup for jails (and sweep leftovers); never raises.

    Where CGROUP_ROOT is unusable and ``mount`` allows it (PYEXEC_CGROUP_MOUNT), a
    root process with CAP_SYS_ADMIN tries ``attempts`` in turn (by default a cgroup2
    mount of its own, then a read-write remount); mode none's reason names each
    attempt and why it failed.
    """
    support = _prepare_at(CGROUP_ROOT, parent)
    if support.enforced:
        support.sweep()
        return support
    if not mount or not may_mount():
        return support
    reasons = [support.reason]
    for name, attempt in attempts or (("own cgroup2 mount", own_mount), ("remount", remount)):
        try:
            return attempt(parent)
        except OSError as exc:
            reasons.append(f"{name}: {exc.strerror or exc}")
    return replace(support, reason="; ".join(reasons))
