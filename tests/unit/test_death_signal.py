"""pyexec.spawn's choice of how nsjail dies with the service: by its own death signal
when the binary holds the constructor scripts/nsjail_pdeathsig.c builds into it,
else under setpriv. (tests/integration/test_dies_with_service.py kills a real
service under both.)"""

from __future__ import annotations

from pathlib import Path

from pyexec import spawn
from tests.support import PROJECT_DIR


def _binary(tmp_path: Path, content: bytes) -> str:
    path = tmp_path / "nsjail"
    path.write_bytes(content)
    spawn.sets_own_death_signal.cache_clear()
    return str(path)


def test_the_marker_is_the_c_constructor_s_own_string() -> None:
    source = (PROJECT_DIR / "scripts/nsjail_pdeathsig.c").read_text()
    assert f'"{spawn.PDEATHSIG_MARKER.decode()}";' in source


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
