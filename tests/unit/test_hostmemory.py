"""What the host gives the service: MemTotal, capped by the service's own cgroup
memory limit (v2 memory.max or v1 memory.limit_in_bytes, the lowest along its path),
read from a /proc and a cgroup tree written here."""

from __future__ import annotations

from pathlib import Path

from pyexec.hostmemory import HostMemory, host_memory, reserve_mb

GIB = 1024 * 1024 * 1024


def _proc(tmp_path: Path, cgroup_lines: str, mem_total_kb: int = 3 * 1024 * 1024) -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text(f"MemTotal:       {mem_total_kb} kB\nMemFree: 1 kB\n")
    (proc / "self" / "cgroup").write_text(cgroup_lines)
    return proc


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_without_a_cgroup_limit_memtotal_is_what_the_host_has(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "0::/service\n")
    root = tmp_path / "cgroup"
    _write(root / "service" / "memory.max", "max\n")
    assert host_memory(proc, root) == HostMemory(3072, "meminfo")


def test_a_v2_limit_on_an_ancestor_caps_the_service(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "0::/a/b\n")
    root = tmp_path / "cgroup"
    _write(root / "a" / "b" / "memory.max", "max\n")
    _write(root / "a" / "memory.max", f"{GIB}\n")
    assert host_memory(proc, root) == HostMemory(1024, "cgroup")


def test_a_v1_memory_limit_caps_the_service_and_the_unlimited_value_does_not(
    tmp_path: Path,
) -> None:
    proc = _proc(tmp_path, "12:cpu,cpuacct:/x\n7:memory:/x\n1:name=systemd:/x\n")
    root = tmp_path / "cgroup"
    _write(root / "memory" / "x" / "memory.limit_in_bytes", f"{2 * GIB}\n")
    _write(root / "memory" / "memory.limit_in_bytes", "9223372036854771712\n")
    assert host_memory(proc, root) == HostMemory(2048, "cgroup")


def test_a_limit_above_memtotal_leaves_memtotal(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "0::/\n", mem_total_kb=1024 * 1024)
    root = tmp_path / "cgroup"
    _write(root / "memory.max", f"{8 * GIB}\n")
    assert host_memory(proc, root) == HostMemory(1024, "meminfo")


def test_an_unreadable_cgroup_file_leaves_memtotal(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "0::/gone\n")
    (proc / "self" / "cgroup").unlink()
    assert host_memory(proc, tmp_path / "cgroup") == HostMemory(3072, "meminfo")


def test_the_reserve_counts_the_service_and_each_idle_pooled_jail() -> None:
    assert reserve_mb({}) == 96
    assert reserve_mb({"light": 6, "heavy": 2, "chart": 1}) == 96 + 72 + 128 + 96


def test_this_host_is_read_without_error() -> None:
    found = host_memory()
    assert found.mb > 0
    assert found.source in ("cgroup", "meminfo")
