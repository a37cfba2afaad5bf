"""Where /sys/fs/cgroup is unusable: the decision to mount a cgroup2 hierarchy of the
service's own, then to remount /sys/fs/cgroup read-write, then to give up (mode none),
over fake hierarchies in temporary directories and a fake mount(2); no root needed.

The probe (a cgroup made as nsjail makes a jail's, limits written, a process moved in)
runs for real against the fake hierarchy where a test wants it; elsewhere it is faked.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pyexec import cgroups
from pyexec.cgroups import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REMOUNT,
    CgroupSupport,
    prepare_cgroups,
)
from pyexec.settings import SettingsError, load_settings

Mounted = tuple[str | None, Path, str | None, int]


def fake_v2(root: Path, controllers: str = "cpuset cpu io memory pids") -> Path:
    """A directory that looks like the root of a cgroup2 hierarchy."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text("")
    (root / "cgroup.procs").write_text("")
    return root


class FakeKernel:
    """Records mount(2) and umount2(2) calls; ``mounted`` is what mountinfo shows."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        self.calls: list[Mounted] = []
        self.unmounted: list[Path] = []
        self.fail_with: OSError | None = None
        self.mounted: list[tuple[Path, str, set[str]]] = []
        self.self_cgroup = tmp_path / "self-cgroup"
        self.self_cgroup.write_text("0::/\n")
        monkeypatch.setattr(cgroups, "SELF_CGROUP", self.self_cgroup)
        monkeypatch.setattr(cgroups, "_mount", self.mount)
        monkeypatch.setattr(cgroups, "_unmount", self.unmounted.append)
        monkeypatch.setattr(cgroups, "mounts", lambda: list(self.mounted))

    def mount(self, source: str | None, target: Path, fstype: str | None, flags: int) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.calls.append((source, target, fstype, flags))


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeKernel:
    monkeypatch.setattr(cgroups, "CGROUP_ROOT", tmp_path / "sys-fs-cgroup")
    monkeypatch.setattr(cgroups, "OWN_MOUNT", tmp_path / "run-pyexec-cgroup2")
    monkeypatch.setattr(cgroups, "may_mount", lambda: True)
    return FakeKernel(monkeypatch, tmp_path)


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> list[CgroupSupport]:
    """Fakes the probe: records what it was asked to probe, and passes."""
    seen: list[CgroupSupport] = []
    monkeypatch.setattr(cgroups, "probe", seen.append)
    return seen


def named(support: CgroupSupport) -> Callable[[str], CgroupSupport]:
    def attempt(_parent: str) -> CgroupSupport:
        return support

    return attempt


def failing(message: str, tried: list[str]) -> Callable[[str], CgroupSupport]:
    def attempt(parent: str) -> CgroupSupport:
        tried.append(parent)
        raise OSError(message)

    return attempt


V2_OWN = CgroupSupport("v2", ("--use_cgroupv2",), source="own_mount")
V2_REMOUNT = CgroupSupport("v2", ("--use_cgroupv2",), source="remount")


def test_a_usable_host_hierarchy_is_used_as_it_is(kernel: FakeKernel) -> None:
    fake_v2(cgroups.CGROUP_ROOT)
    tried: list[str] = []
    support = prepare_cgroups("pyexec", attempts=(("own", failing("no", tried)),))
    assert (support.mode, support.source) == ("v2", "host")
    assert tried == []
    assert kernel.calls == []


def test_the_own_mount_comes_first(kernel: FakeKernel) -> None:
    tried: list[str] = []
    support = prepare_cgroups(
        "pyexec", attempts=(("own", named(V2_OWN)), ("remount", failing("no", tried)))
    )
    assert support is V2_OWN
    assert tried == []


def test_the_remount_is_tried_when_the_own_mount_fails(kernel: FakeKernel) -> None:
    tried: list[str] = []
    support = prepare_cgroups(
        "pyexec", attempts=(("own", failing("no", tried)), ("remount", named(V2_REMOUNT)))
    )
    assert support is V2_REMOUNT
    assert tried == ["pyexec"]


def test_mode_none_names_what_was_found_and_each_failed_attempt(kernel: FakeKernel) -> None:
    tried: list[str] = []
    support = prepare_cgroups(
        "pyexec",
        attempts=(
            ("own cgroup2 mount", failing("Operation not permitted", tried)),
            ("remount", failing("Read-only file system", tried)),
        ),
    )
    assert (support.mode, support.source, support.enforced) == ("none", "none", False)
    assert support.nsjail_args == ()
    assert support.reason == (
        "no memory, pids and cpu cgroup controllers are mounted; "
        "own cgroup2 mount: Operation not permitted; remount: Read-only file system"
    )
    assert tried == ["pyexec", "pyexec"]


@pytest.mark.parametrize("reason", ["off", "not root"])
def test_nothing_is_mounted_when_turned_off_or_without_the_privilege(
    kernel: FakeKernel, monkeypatch: pytest.MonkeyPatch, reason: str
) -> None:
    tried: list[str] = []
    if reason == "not root":
        monkeypatch.setattr(cgroups, "may_mount", lambda: False)
    support = prepare_cgroups(
        "pyexec", mount=reason != "off", attempts=(("own", failing("no", tried)),)
    )
    assert (support.mode, support.source) == ("none", "none")
    assert support.reason == "no memory, pids and cpu cgroup controllers are mounted"
    assert tried == []


def test_may_mount_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert not cgroups.may_mount()


def test_the_own_mount_mounts_cgroup2_and_prepares_it_for_jails(
    kernel: FakeKernel, probes: list[CgroupSupport]
) -> None:
    own = fake_v2(cgroups.OWN_MOUNT)
    support = cgroups.own_mount("pyexec")
    assert kernel.calls == [("cgroup2", own, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC)]
    assert (support.mode, support.source) == ("v2", "own_mount")
    assert support.nsjail_args == ("--use_cgroupv2", "--cgroupv2_mount", str(own / "pyexec"))
    assert (own / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert (own / "pyexec" / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert probes == [dataclasses.replace(support, source="host")]
    assert kernel.unmounted == []


def test_an_own_mount_already_there_is_reused(
    kernel: FakeKernel, probes: list[CgroupSupport]
) -> None:
    own = fake_v2(cgroups.OWN_MOUNT)
    kernel.mounted = [(own, "cgroup2", {"rw"})]
    support = cgroups.own_mount("pyexec")
    assert kernel.calls == []
    assert support.source == "own_mount"


def test_an_own_mount_without_the_controllers_is_unmounted(
    kernel: FakeKernel, probes: list[CgroupSupport]
) -> None:
    # As on a cgroup v1 host, where v1 holds memory, pids and cpu.
    fake_v2(cgroups.OWN_MOUNT, controllers="")
    with pytest.raises(OSError, match="not delegated here: memory, pids, cpu"):
        cgroups.own_mount("pyexec")
    assert kernel.unmounted == [cgroups.OWN_MOUNT]
    assert probes == []


def test_an_own_mount_a_jail_cannot_use_is_unmounted(
    kernel: FakeKernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_v2(cgroups.OWN_MOUNT)

    def refuse(_support: CgroupSupport) -> None:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(cgroups, "probe", refuse)
    with pytest.raises(OSError, match="a jail's cgroup cannot be used: Permission denied"):
        cgroups.own_mount("pyexec")
    assert kernel.unmounted == [cgroups.OWN_MOUNT]


def test_the_own_mount_is_not_unmounted_when_an_earlier_one_is_reused(
    kernel: FakeKernel, probes: list[CgroupSupport]
) -> None:
    own = fake_v2(cgroups.OWN_MOUNT, controllers="")
    kernel.mounted = [(own, "cgroup2", {"rw"})]
    with pytest.raises(OSError, match="not delegated"):
        cgroups.own_mount("pyexec")
    assert kernel.unmounted == []


def test_a_failed_mount_call_is_an_attempt_that_failed(kernel: FakeKernel) -> None:
    kernel.fail_with = OSError(1, "Operation not permitted")
    support = prepare_cgroups("pyexec")
    assert support.mode == "none"
    assert "own cgroup2 mount: Operation not permitted" in support.reason
    # Nothing read-only is mounted at the fake root: the remount has nothing to do.
    assert support.reason.endswith(
        f"remount: no read-only cgroup mount at {cgroups.CGROUP_ROOT} for jails"
    )


def test_the_remount_makes_each_read_only_cgroup_mount_writable_keeping_its_flags(
    kernel: FakeKernel, probes: list[CgroupSupport]
) -> None:
    root = fake_v2(cgroups.CGROUP_ROOT)
    kernel.mounted = [
        (Path("/"), "ext4", {"rw"}),
        (root, "cgroup2", {"ro", "nosuid", "nodev", "noexec", "relatime"}),
    ]
    support = cgroups.remount("pyexec")
    assert kernel.calls == [
        (None, root, None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    ]
    assert (support.mode, support.source) == ("v2", "remount")


def test_a_remount_a_jail_cannot_use_is_made_read_only_again(
    kernel: FakeKernel, probes: list[CgroupSupport]
) -> None:
    root = fake_v2(cgroups.CGROUP_ROOT, controllers="cpu")
    kernel.mounted = [(root, "cgroup2", {"ro", "nosuid"})]
    with pytest.raises(OSError, match="not delegated"):
        cgroups.remount("pyexec")
    assert [flags for *_, flags in kernel.calls] == [
        MS_REMOUNT | MS_BIND | MS_NOSUID,
        MS_REMOUNT | MS_BIND | MS_NOSUID | MS_RDONLY,
    ]


def test_the_remount_covers_v1_controller_mounts_under_the_root(
    kernel: FakeKernel, probes: list[CgroupSupport]
) -> None:
    root = cgroups.CGROUP_ROOT
    for controller in ("memory", "pids", "cpu"):
        (root / controller).mkdir(parents=True)
        (root / controller / "tasks").write_text("")
    kernel.mounted = [
        (root, "tmpfs", {"ro"}),
        *((root / name, "cgroup", {"ro"}) for name in ("memory", "pids", "cpu")),
        (root / "devices", "cgroup", {"ro"}),  # never: a container's device rules
        (root / "freezer", "cgroup", {"ro"}),
    ]
    support = cgroups.remount("pyexec")
    assert [target for _, target, _, _ in kernel.calls] == [
        root / "memory",
        root / "pids",
        root / "cpu",
    ]
    assert (support.mode, support.source) == ("v1", "remount")


def test_the_probe_makes_a_jail_cgroup_writes_its_limits_and_removes_it(tmp_path: Path) -> None:
    parent = tmp_path / "pyexec"
    parent.mkdir()
    written: dict[str, str] = {}

    class Recorded(type(tmp_path)):  # type: ignore[misc]
        def write_text(self, data: str, *args: object, **kwargs: object) -> int:
            written[self.name] = data
            return 0

    support = CgroupSupport("v2", (), parents=(Recorded(parent),))
    cgroups.probe(support)
    assert set(written) == {"memory.max", "pids.max", "cpu.max", "cgroup.procs"}
    assert written["cgroup.procs"].isdigit()
    assert list(parent.iterdir()) == []


def test_the_probe_says_what_a_jail_could_not_do(tmp_path: Path) -> None:
    parent = tmp_path / "pyexec"
    (parent / "NSJAIL.0" / "memory.max").mkdir(parents=True)  # not writable as a file
    support = CgroupSupport("v2", (), parents=(parent,))
    with pytest.raises(IsADirectoryError):
        cgroups.probe(support)


def test_mounts_reads_mount_points_types_and_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 0:21 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - cgroup2 cgroup2 rw\n"
        "23 1 0:22 / /a\\040b rw - tmpfs tmpfs rw,size=4k\n"
    )
    monkeypatch.setattr(cgroups, "MOUNTINFO", mountinfo)
    assert cgroups.mounts() == [
        (Path("/sys/fs/cgroup"), "cgroup2", {"ro", "nosuid", "nodev", "noexec"}),
        (Path("/a b"), "tmpfs", {"rw"}),
    ]


@pytest.mark.parametrize(("raw", "value"), [(None, "auto"), ("auto", "auto"), (" off ", "off")])
def test_pyexec_cgroup_mount_is_auto_unless_off(raw: str | None, value: str) -> None:
    environ = {} if raw is None else {"PYEXEC_CGROUP_MOUNT": raw}
    assert load_settings(environ).cgroup_mount == value


def test_pyexec_cgroup_mount_other_than_auto_or_off_stops_start_up() -> None:
    with pytest.raises(SettingsError, match="PYEXEC_CGROUP_MOUNT='on' must be auto or off"):
        load_settings({"PYEXEC_CGROUP_MOUNT": "on"})
