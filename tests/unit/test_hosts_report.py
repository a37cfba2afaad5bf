"""hosts/report.py's verdict on how a UML guest ended, from boot.txt and its console."""

from __future__ import annotations

from pathlib import Path

import pytest

from hosts import report

POWERED_OFF = (
    "Run /work/main/hosts/guest_init.sh as init process\nsysrq: Power Off\nreboot: Power down\n"
)
PANICKED = (
    "Run /work/main/hosts/guest_init.sh as init process\n"
    "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n"
    " [<6002c0dd>] new_thread_handler+0xae/0xb0\n"
)


def boot(exit_code: str) -> dict[str, str]:
    return {"exit": exit_code, "limit": "360", "seconds": "147"}


def test_a_clean_exit_is_a_power_off() -> None:
    passed, detail = report.powered_off_by_itself(boot("0"), POWERED_OFF)
    assert passed
    assert detail == "UML exit 0 after 147 s (124: killed at the 360 s limit)"


def test_an_abort_after_the_logged_power_off_passes_and_says_so() -> None:
    passed, detail = report.powered_off_by_itself(boot("134"), POWERED_OFF)
    assert passed
    assert detail.endswith("UML aborted in its own teardown, after the guest's power-off")


@pytest.mark.parametrize(
    ("exit_code", "console"),
    [
        ("134", PANICKED),  # an abort without the power-off: a panic
        ("134", POWERED_OFF + "Kernel panic - not syncing: fault\n"),  # power-off not last
        ("134", ""),  # no console at all
        ("124", POWERED_OFF),  # killed at the limit, whatever the console says
        ("1", POWERED_OFF),
        ("?", POWERED_OFF),  # boot.txt missing
    ],
)
def test_any_other_ending_fails(exit_code: str, console: str) -> None:
    passed, detail = report.powered_off_by_itself(boot(exit_code), console)
    assert not passed
    assert detail.startswith(f"UML exit {exit_code} after 147 s")


def test_the_report_notes_an_abort_it_let_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "boot.txt").write_text("mem=1G mode=none\nexit=134\nlimit=360\nseconds=147\n")
    (tmp_path / "console.log").write_text(POWERED_OFF)
    (tmp_path / "result.json").write_text('{"done": true, "checks": []}')
    assert report.report("small-no-cgroup", tmp_path)
    printed = capsys.readouterr().out
    assert "host small-no-cgroup: 3 passed, 0 failed" in printed
    assert "note: UML exit 134 after 147 s" in printed
    assert "UML aborted in its own teardown" in printed


def test_the_report_fails_a_panic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "boot.txt").write_text("mem=1G mode=none\nexit=134\nlimit=360\nseconds=2\n")
    (tmp_path / "console.log").write_text(PANICKED)
    (tmp_path / "result.json").write_text('{"done": true, "checks": []}')
    assert not report.report("small-no-cgroup", tmp_path)
    printed = capsys.readouterr().out
    assert "FAIL guest powered off by itself: UML exit 134 after 2 s" in printed
    assert "note:" not in printed
