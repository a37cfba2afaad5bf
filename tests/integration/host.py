"""What a jail is on the host, read from /proc and the cgroup tree: to check that a
limit held while a jail ran, and that nothing of it remains after its teardown."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from pyexec.jail import Jail
from pyexec.jail_ids import JAIL_ID_BASE, JAIL_ID_COUNT, SHARED_ID
from pyexec.settings import Settings


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat that tell whether a process is still ours."""

    state: str
    ppid: int
    started: int  # clock ticks after boot: a reused pid has another
    cpu_seconds: float  # user and system


def proc_stat(pid: int) -> ProcStat | None:
    """The process ``pid`` now, or None when there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # After the command name (which may hold spaces and parentheses): field 3 on.
    fields = text.rsplit(")", 1)[1].split()
    return ProcStat(
        state=fields[0],
        ppid=int(fields[1]),
        started=int(fields[19]),
        cpu_seconds=(int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"),
    )


def children(pid: int) -> list[int]:
    """The children of every thread of ``pid`` (the service forks nsjail from its
    launcher thread, not its main one); none when it is gone."""
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            found.extend(
                int(child)
                for child in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
            )
        except OSError:
            continue
    return found


@dataclass(frozen=True)
class JailTrace:
    """A jail's host processes (nsjail and the jail's init) and cgroup directories,
    recorded while it is up, so that its teardown can be checked afterwards."""

    processes: tuple[tuple[int, ProcStat], ...]
    cgroup_dirs: tuple[Path, ...]

    @classmethod
    def of(cls, jail: Jail) -> JailTrace:
        assert jail.proc is not None, "the jail was never started"
        assert jail.init_pid is not None, "the jail is not ready"
        processes = []
        for pid in (jail.proc.pid, jail.init_pid):
            stat = proc_stat(pid)
            assert stat is not None, f"pid {pid} does not exist"
            assert stat.state != "Z", f"pid {pid} has already ended"
            processes.append((pid, stat))
        candidates = list(jail.cgroups.jail_dirs(jail.init_pid))
        if jail.cgroups.cpuacct is not None:  # cgroup v1: our own CPU-counting cgroup
            candidates.append(jail.cgroups.cpuacct / f"JAIL.{jail.init_pid}")
        dirs = tuple(directory for directory in candidates if directory.is_dir())
        # Otherwise "no cgroup remains" would hold by construction.
        assert dirs or not jail.cgroups.enforced, f"none of {candidates} exists"
        return cls(tuple(processes), dirs)

    def remains(self) -> list[str]:
        """What is left of the jail: a process that still exists (not a pid reused
        since, nor a zombie that another parent has to reap), a cgroup directory."""
        left = []
        for pid, before in self.processes:
            if not ended(pid, before):
                now = proc_stat(pid)
                state = f"state {now.state}, parent {now.ppid}" if now else "gone since"
                left.append(f"pid {pid} ({state})")
        return left + [str(directory) for directory in self.cgroup_dirs if directory.exists()]


def ended(pid: int, before: ProcStat) -> bool:
    """Whether the process seen as ``before`` has ended: no such pid, a pid reused
    since, or a zombie that another parent has to reap (one of ours still needs us)."""
    now = proc_stat(pid)
    if now is None or now.started != before.started:
        return True
    return now.state == "Z" and now.ppid != os.getpid()


def jail_uids(settings: Settings) -> range:
    """The host uids the jails' processes run as (pyexec/jail_ids.py)."""
    if settings.jail_uids == "shared":
        return range(SHARED_ID, SHARED_ID + 1)
    return range(JAIL_ID_BASE, JAIL_ID_BASE + JAIL_ID_COUNT)


def _real_uid(pid_dir: Path) -> int | None:
    try:
        status = (pid_dir / "status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return None


def jail_populations(uids: range) -> dict[str, int]:
    """How many processes of ``uids`` each pid namespace holds now (each jail has one)."""
    counts: dict[str, int] = {}
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit() or _real_uid(pid_dir) not in uids:
            continue
        try:
            namespace = os.readlink(pid_dir / "ns" / "pid")
        except OSError:
            continue
        counts[namespace] = counts.get(namespace, 0) + 1
    return counts


class JailCensus:
    """Counts the jails' processes per pid namespace in the background, for as long
    as it is entered, and keeps the largest count seen for each namespace."""

    def __init__(self, uids: range, interval: float = 0.02) -> None:
        self.uids = uids
        self.interval = interval
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="jail-census", daemon=True)

    def __enter__(self) -> JailCensus:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.is_set():
            for namespace, count in jail_populations(self.uids).items():
                self.peaks[namespace] = max(self.peaks.get(namespace, 0), count)
            self._stop.wait(self.interval)

    def largest(self) -> tuple[str, int]:
        """The namespace of the most populous jail seen, and its peak count."""
        assert self.peaks, "no jail process was seen"
        namespace = max(self.peaks, key=lambda name: self.peaks[name])
        return namespace, self.peaks[namespace]
