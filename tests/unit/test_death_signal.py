"""pyexec.spawn's reading of the nsjail binary: by its own death signal when it holds
the constructor scripts/nsjail_pdeathsig.c builds into it, else under setpriv; and
whether it denies x32 system calls itself (scripts/nsjail_x32.c) and gives itself
oom_score_adj 1000 (scripts/nsjail_oom.c). (tests/integration/
test_dies_with_service.py kills a real service under both binaries;
test_sandbox_unavailable.py refuses a binary that claims the x32 filter falsely.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from pyexec import spawn
from tests.support import PROJECT_DIR


def _binary(tmp_path: Path, content: bytes) -> str:
    path = tmp_path / "nsjail"
    path.write_bytes(content)
    spawn.forget_binaries()
    return str(path)


@pytest.mark.parametrize(
    ("source", "marker"),
    [
        ("scripts/nsjail_pdeathsig.c", spawn.PDEATHSIG_MARKER),
        ("scripts/nsjail_x32.c", spawn.X32_MARKER),
        ("scripts/nsjail_oom.c", spawn.OOM_MARKER),
    ],
)
def test_each_marker_is_its_c_constructor_s_own_string(source: str, marker: bytes) -> None:
    assert f'"{marker.decode()}";' in (PROJECT_DIR / source).read_text()


def test_an_nsjail_with_the_marker_starts_without_setpriv(tmp_path: Path) -> None:
    path = _binary(tmp_path, b"\x7fELF..." + spawn.PDEATHSIG_MARKER + b"\0...")
    assert spawn.sets_own_death_signal(path)
    assert spawn.launch_prefix(path) == ()
    assert spawn.dies_with_service(path)


def test_any_other_nsjail_starts_under_setpriv(tmp_path: Path) -> None:
    path = _binary(tmp_path, b"\x7fELF... an nsjail without the constructor")
    assert not spawn.sets_own_death_signal(path)
    assert spawn.launch_prefix(path) == spawn.SETPRIV_PREFIX
    assert spawn.SETPRIV_PREFIX[1:] == ("--pdeathsig", "KILL")
    assert spawn.dies_with_service(path) == bool(spawn.SETPRIV_PREFIX)


def test_an_unreadable_or_empty_nsjail_counts_as_one_without_it(tmp_path: Path) -> None:
    assert not spawn.sets_own_death_signal(str(tmp_path / "missing"))
    assert spawn.launch_prefix(_binary(tmp_path, b"")) == spawn.SETPRIV_PREFIX


def test_each_constructor_is_recognised_by_its_own_marker(tmp_path: Path) -> None:
    only_x32 = _binary(tmp_path, b"\x7fELF..." + spawn.X32_MARKER + b"\0...")
    assert spawn.denies_x32_itself(only_x32)
    assert not spawn.sets_own_death_signal(only_x32)
    assert not spawn.sets_own_oom_score(only_x32)
    only_oom = _binary(tmp_path, b"\x7fELF..." + spawn.OOM_MARKER + b"\0...")
    assert spawn.sets_own_oom_score(only_oom)
    assert not spawn.denies_x32_itself(only_oom)
    every = _binary(
        tmp_path,
        b"\x7fELF" + spawn.PDEATHSIG_MARKER + b"\0" + spawn.X32_MARKER + b"\0" + spawn.OOM_MARKER,
    )
    assert spawn.denies_x32_itself(every)
    assert spawn.sets_own_death_signal(every)
    assert spawn.sets_own_oom_score(every)


def test_a_binary_replaced_at_the_same_path_is_read_anew(tmp_path: Path) -> None:
    """`make setup` may install another nsjail while the service runs: the next jail
    follows the binary that is there, not the one read first."""
    path = tmp_path / "nsjail"
    path.write_bytes(b"\x7fELF..." + spawn.X32_MARKER)
    assert spawn.denies_x32_itself(str(path))
    replacement = tmp_path / "nsjail.new"
    replacement.write_bytes(b"\x7fELF... an nsjail built before the x32 filter")
    replacement.replace(path)  # what `install` does: a new file under the old name
    assert not spawn.denies_x32_itself(str(path))
