"""pyexec.cgroups over a fake cgroup hierarchy in a temporary directory: the figures read
back from a jail's cgroup, CPU counting, removal and the sweep of leftovers, and
prepare_cgroups without any controller.

A plain directory is not cgroupfs: there, a cgroup's interface files (cgroup.procs,
memory.peak, ...) go with the directory on rmdir. ``CgroupfsPath`` imitates that for the
sweep; without it a directory holding a file cannot be removed, which the sweep survives.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path, PosixPath

import pytest

from pyexec import cgroups
from pyexec.cgroups import CgroupSupport, CpuMeter, is_jail_init, prepare_cgroups
from pyexec.kernelfiles import KernelFile

PID = 4321
# Far above any pid_max: never a live process.
DEAD_PID = 999_999_999
INTERFACE_FILES = ("cgroup.procs", "memory.peak", "memory.events", "cpu.stat", "cpuacct.usage")


class CgroupfsPath(PosixPath):
    """A path whose rmdir removes a cgroup's interface files with the directory, as
    cgroupfs does (and refuses, like cgroupfs, while child directories exist)."""

    def rmdir(self) -> None:
        if self.is_dir() and not any(child.is_dir() for child in self.iterdir()):
            for name in INTERFACE_FILES:
                (self / name).unlink(missing_ok=True)
        super().rmdir()


def v1_support(root: Path) -> CgroupSupport:
    parents = tuple(root / controller / "pyexec" for controller in ("memory", "pids", "cpu"))
    cpuacct = root / "cpuacct" / "pyexec"
    for directory in (*parents, cpuacct):
        directory.mkdir(parents=True)
    return CgroupSupport("v1", ("--v1",), parents=parents, cpuacct=cpuacct)


def v2_support(root: Path) -> CgroupSupport:
    parent = root / "pyexec"
    parent.mkdir(parents=True)
    return CgroupSupport("v2", ("--use_cgroupv2",), parents=(parent,))


def jail_file(support: CgroupSupport, name: str, text: str, pid: int = PID) -> Path:
    """Write ``name`` in the memory controller's cgroup of jail ``pid``."""
    directory = support.jail_dirs(pid)[0]
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


@pytest.fixture
def v1(tmp_path: Path) -> CgroupSupport:
    return v1_support(tmp_path)


@pytest.fixture
def v2(tmp_path: Path) -> CgroupSupport:
    return v2_support(tmp_path)


@pytest.fixture
def jail_init() -> Iterator[int]:
    """The pid of a live process whose parent is named nsjail, as a jail's init is."""
    code = (
        "import os, sys\n"
        "with open('/proc/self/comm', 'w') as comm:\n"
        "    comm.write('nsjail')\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    os.read(0, 1)\n"
        "    os._exit(0)\n"
        "print(child, flush=True)\n"
        "os.read(0, 1)\n"
        "os.waitpid(child, 0)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdin is not None
        assert parent.stdout is not None
        try:
            yield int(parent.stdout.readline())
        finally:
            parent.stdin.close()  # end of file for both: they exit
            parent.wait(timeout=10)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1048576\n", 1048576), ("0", 0), ("max\n", None), ("", None), ("12 34", None)],
)
def test_memory_peak_reads_the_v1_max_usage_file(
    v1: CgroupSupport, text: str, expected: int | None
) -> None:
    jail_file(v1, "memory.max_usage_in_bytes", text)
    assert v1.memory_peak(held(v1.memory_peak_file(PID))) == expected


@pytest.mark.parametrize(("text", "expected"), [("52428800\n", 52428800), ("oops", None)])
def test_memory_peak_reads_the_v2_peak_file(
    v2: CgroupSupport, text: str, expected: int | None
) -> None:
    jail_file(v2, "memory.peak", text)
    assert v2.memory_peak(held(v2.memory_peak_file(PID))) == expected


def test_memory_peak_is_unknown_without_the_jails_cgroup(
    v1: CgroupSupport, v2: CgroupSupport
) -> None:
    assert v1.memory_peak_file(PID) is None
    assert v2.memory_peak_file(PID) is None
    assert CgroupSupport("none", ()).memory_peak_file(PID) is None


def test_memory_peak_reads_anew_and_is_unknown_once_the_file_is_closed(v1: CgroupSupport) -> None:
    path = jail_file(v1, "memory.max_usage_in_bytes", "100\n")
    peak_file = held(v1.memory_peak_file(PID))
    path.write_text("250\n")
    assert v1.memory_peak(peak_file) == 250
    peak_file.close()  # as a removed cgroup's file: reads fail (ENODEV there)
    assert v1.memory_peak(peak_file) is None


V1_OOM_CONTROL = "oom_kill_disable 0\nunder_oom 0\noom_kill {count}\n"
V2_MEMORY_EVENTS = "low 0\nhigh 0\nmax 17\noom {count}\noom_kill {count}\noom_group_kill 0\n"


@pytest.mark.parametrize(("count", "expected"), [(0, False), (1, True), (3, True)])
def test_oom_killed_reads_v1_oom_control(v1: CgroupSupport, count: int, expected: bool) -> None:
    jail_file(v1, "memory.oom_control", V1_OOM_CONTROL.format(count=count))
    assert v1.oom_killed(PID) is expected


@pytest.mark.parametrize(("count", "expected"), [(0, False), (1, True)])
def test_oom_killed_reads_v2_memory_events(v2: CgroupSupport, count: int, expected: bool) -> None:
    jail_file(v2, "memory.events", V2_MEMORY_EVENTS.format(count=count))
    assert v2.oom_killed(PID) is expected


def test_oom_killed_is_unknown_when_the_file_is_missing_or_has_no_count(
    v1: CgroupSupport, v2: CgroupSupport
) -> None:
    assert v1.oom_killed(PID) is None
    assert v2.oom_killed(PID) is None
    assert CgroupSupport("none", ()).oom_killed(PID) is None
    # Kernels before 4.13 have no oom_kill line in memory.oom_control.
    jail_file(v1, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n")
    assert v1.oom_killed(PID) is None


def test_track_cpu_on_v2_is_the_jails_own_cpu_stat(v2: CgroupSupport, tmp_path: Path) -> None:
    jail_file(v2, "cpu.stat", "usage_usec 0\n")
    handle = held(v2.track_cpu(PID))
    assert handle.path == str(tmp_path / "pyexec" / f"NSJAIL.{PID}" / "cpu.stat")


def test_track_cpu_on_v1_moves_the_jail_into_a_cpuacct_cgroup_of_ours(
    v1: CgroupSupport, tmp_path: Path
) -> None:
    directory = tmp_path / "cpuacct" / "pyexec" / f"JAIL.{PID}"
    directory.mkdir(parents=True)
    (directory / "cpuacct.usage").write_text("0\n")  # as the kernel makes it
    handle = held(v1.track_cpu(PID))
    assert handle.path == str(directory / "cpuacct.usage")
    assert (directory / "cgroup.procs").read_text() == str(PID)


def test_track_cpu_cannot_count_without_a_cpuacct_cgroup(tmp_path: Path) -> None:
    parents = (tmp_path / "memory" / "pyexec",)
    assert CgroupSupport("v1", (), parents=parents).track_cpu(PID) is None
    missing = tmp_path / "absent" / "pyexec"
    assert CgroupSupport("v1", (), parents=parents, cpuacct=missing).track_cpu(PID) is None
    assert CgroupSupport("none", ()).track_cpu(PID) is None


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("cpuacct.usage", "2500000000\n", 2500.0),
        ("cpuacct.usage", "0", 0.0),
        ("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n", 1.5),
        ("cpu.stat", "user_usec 1000\nsystem_usec 500\n", None),
    ],
)
def test_cpu_ms_parses_cpuacct_nanoseconds_and_cpu_stat_microseconds(
    tmp_path: Path, name: str, text: str, expected: float | None
) -> None:
    (tmp_path / name).write_text(text)
    assert CgroupSupport.cpu_ms(KernelFile(tmp_path / name)) == expected


def test_cpu_ms_is_unknown_when_the_file_cannot_be_read(tmp_path: Path) -> None:
    (tmp_path / "cpu.stat").write_text("usage_usec 1500\n")
    handle = KernelFile(tmp_path / "cpu.stat")
    handle.close()  # as a removed cgroup's file: reads fail (ENODEV there)
    assert CgroupSupport.cpu_ms(handle) is None


def test_cpu_meter_counts_from_begin(tmp_path: Path) -> None:
    path = tmp_path / "cpuacct.usage"
    path.write_text("1000000")  # 1 ms before the hand-over
    handle = KernelFile(path)
    meter = CpuMeter.begin(handle)
    assert meter.handle is handle
    path.write_text("5000000")
    assert meter.used_ms() == 4.0
    handle.close()
    assert meter.used_ms() is None


def test_cpu_meter_without_a_handle_counts_nothing() -> None:
    meter = CpuMeter.begin(None)
    assert meter.handle is None
    assert meter.used_ms() is None


def test_remove_jail_removes_the_jails_empty_cgroups(v1: CgroupSupport) -> None:
    dirs = v1.jail_dirs(PID)
    for directory in dirs:
        directory.mkdir()
    v1.remove_jail(PID)
    assert [directory.exists() for directory in dirs] == [False, False, False]
    v1.remove_jail(PID)  # already gone: nothing to do


def test_remove_jail_gives_up_on_a_cgroup_that_stays_busy(
    v2: CgroupSupport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cgroups, "RMDIR_TRIES", 3)
    monkeypatch.setattr(cgroups, "RMDIR_PAUSE_SECONDS", 0.0)
    busy = jail_file(v2, "cgroup.procs", "77\n").parent
    v2.remove_jail(PID)
    assert busy.is_dir()


def test_untrack_cpu_removes_our_cpuacct_cgroup(v1: CgroupSupport, tmp_path: Path) -> None:
    directory = tmp_path / "cpuacct" / "pyexec" / f"JAIL.{PID}"
    directory.mkdir()
    v1.untrack_cpu(PID)
    assert not directory.exists()
    v1.untrack_cpu(PID)  # already gone: nothing to do


def test_untrack_cpu_tries_once_unless_patient(
    v1: CgroupSupport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The jail's teardown tries once in its own thread and hands a cgroup the kernel
    still holds to the reaper, which retries."""
    pauses: list[float] = []
    monkeypatch.setattr(time, "sleep", pauses.append)
    monkeypatch.setattr(cgroups, "RMDIR_TRIES", 3)
    directory = tmp_path / "cpuacct" / "pyexec" / f"JAIL.{PID}"
    directory.mkdir()
    (directory / "busy").write_text("")  # rmdir fails (ENOTEMPTY) as EBUSY would
    assert v1.untrack_cpu(PID, patiently=False) is False
    assert pauses == []
    assert v1.untrack_cpu(PID) is False
    assert len(pauses) == 2  # three tries, a pause between each
    (directory / "busy").unlink()
    assert v1.untrack_cpu(PID, patiently=False) is True
    assert not directory.exists()


def test_untrack_cpu_on_v2_touches_nothing(v2: CgroupSupport) -> None:
    directory = v2.jail_dirs(PID)[0]
    directory.mkdir()
    v2.untrack_cpu(PID)
    assert directory.is_dir()


def _cgroup(parent: Path, name: str, procs: str) -> Path:
    directory = parent / name
    directory.mkdir()
    (directory / "cgroup.procs").write_text(procs)
    return directory


def test_sweep_removes_the_empty_cgroups_of_dead_jails_only(
    tmp_path: Path, jail_init: int
) -> None:
    support = v1_support(CgroupfsPath(tmp_path))
    memory, pids, _cpu = support.parents
    assert support.cpuacct is not None
    dead = [
        _cgroup(memory, f"NSJAIL.{DEAD_PID}", ""),
        _cgroup(pids, f"NSJAIL.{DEAD_PID}", "\n"),
        _cgroup(memory, "NSJAIL.notapid", ""),
        _cgroup(support.cpuacct, f"JAIL.{DEAD_PID}", ""),
    ]
    kept = [
        # Processes still listed: the kernel would refuse, and so does the sweep.
        _cgroup(memory, f"NSJAIL.{DEAD_PID - 1}", "1234\n"),
        _cgroup(support.cpuacct, f"JAIL.{DEAD_PID - 1}", "1234\n"),
        # A live jail's init that has not joined its cgroup yet.
        _cgroup(memory, f"NSJAIL.{jail_init}", ""),
        # Not a jail's cgroup at all.
        _cgroup(memory, "other", ""),
        _cgroup(support.cpuacct, f"NSJAIL.{DEAD_PID}", ""),
    ]
    assert support.sweep() == len(dead)
    assert [directory.exists() for directory in dead] == [False] * len(dead)
    assert [directory.exists() for directory in kept] == [True] * len(kept)


def test_sweep_on_v2_removes_empty_dead_jails(tmp_path: Path) -> None:
    support = v2_support(CgroupfsPath(tmp_path))
    gone = _cgroup(support.parents[0], f"NSJAIL.{DEAD_PID}", "")
    busy = _cgroup(support.parents[0], f"NSJAIL.{DEAD_PID - 1}", "99\n")
    assert support.sweep() == 1
    assert (gone.exists(), busy.exists()) == (False, True)


def test_sweep_skips_what_cannot_be_removed_on_a_plain_filesystem(v1: CgroupSupport) -> None:
    # A plain directory keeps its cgroup.procs file on rmdir (ENOTEMPTY); one without
    # the file is no cgroup the sweep can judge.
    with_file = _cgroup(v1.parents[0], f"NSJAIL.{DEAD_PID}", "")
    without_file = v1.parents[1] / f"NSJAIL.{DEAD_PID}"
    without_file.mkdir()
    assert v1.sweep() == 0
    assert with_file.is_dir()
    assert without_file.is_dir()


def test_is_jail_init_is_false_for_this_process_and_for_no_process() -> None:
    assert not is_jail_init(os.getpid())
    assert not is_jail_init(DEAD_PID)


def test_is_jail_init_is_true_for_a_child_of_a_process_named_nsjail(jail_init: int) -> None:
    assert is_jail_init(jail_init)


def test_prepare_cgroups_without_controllers_falls_back_to_none_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cgroups, "CGROUP_ROOT", tmp_path)
    support = prepare_cgroups("pyexec")
    assert support.mode == "none"
    assert not support.enforced
    assert support.nsjail_args == ()
    assert "controllers" in support.reason
    assert list(tmp_path.iterdir()) == []


def test_prepare_cgroups_with_an_unusable_v2_root_falls_back_to_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # cgroup.controllers marks a v2 root, but nothing below it is delegated here.
    (tmp_path / "cgroup.controllers").write_text("cpu io\n")
    monkeypatch.setattr(cgroups, "CGROUP_ROOT", tmp_path)
    support = prepare_cgroups("pyexec")
    assert support.mode == "none"
    assert support.reason.startswith("cgroups cannot be used:")


def test_prepare_cgroups_on_v1_makes_the_parents_and_names_them_to_nsjail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for controller in ("memory", "pids", "cpu", "cpuacct"):
        (tmp_path / controller).mkdir()
        (tmp_path / controller / "tasks").write_text("")
    monkeypatch.setattr(cgroups, "CGROUP_ROOT", tmp_path)
    support = prepare_cgroups("pyexec")
    assert support.mode == "v1"
    assert support.enforced
    assert support.parents == tuple(
        tmp_path / controller / "pyexec" for controller in ("memory", "pids", "cpu")
    )
    assert support.cpuacct == tmp_path / "cpuacct" / "pyexec"
    assert all(parent.is_dir() for parent in support.parents)
    args = support.nsjail_args
    assert args[args.index("--cgroup_mem_mount") + 1] == str(tmp_path / "memory")
    assert args[args.index("--cgroup_mem_parent") + 1] == "pyexec"
    assert args[args.index("--cgroup_pids_parent") + 1] == "pyexec"
    assert args[args.index("--cgroup_cpu_mount") + 1] == str(tmp_path / "cpu")


def test_prepare_cgroups_on_v1_without_cpuacct_cannot_count_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for controller in ("memory", "pids", "cpu"):
        (tmp_path / controller).mkdir()
        (tmp_path / controller / "tasks").write_text("")
    monkeypatch.setattr(cgroups, "CGROUP_ROOT", tmp_path)
    support = prepare_cgroups("pyexec")
    assert support.mode == "v1"
    assert support.cpuacct is None
    assert support.track_cpu(PID) is None


def held(kernel_file: KernelFile | None) -> KernelFile:
    """A file the code under test opened (failing the test if it could not)."""
    assert kernel_file is not None
    return kernel_file
