"""pyexec.nsjail_log: how a jail ended, the lines an operator reads, and the diagnosis."""

from __future__ import annotations

import pytest

from pyexec.nsjail_log import DIAGNOSES, UNKNOWN_CAUSE, Ending, diagnose, ending, summary

STAMP = b"[2026-11-27T21:30:00+0000]"
START = STAMP + b" Mode: STANDALONE_ONCE\n[I]" + STAMP + b" Executing '/usr/bin/python3'\n"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            b"[I]" + STAMP + b" pid=123 ([STANDALONE MODE]) exited with status: 3, (PIDs left: 0)",
            Ending(123, None, 3),
        ),
        (
            b"[I]" + STAMP + b" pid=77 ([STANDALONE MODE]) exited with status: 0, (PIDs left: 0)",
            Ending(77, None, 0),
        ),
        (
            b"[I]" + STAMP + b" pid=123 ([STANDALONE MODE]) terminated with signal: "
            b"SIGKILL (9), (PIDs left: 0)",
            Ending(123, "SIGKILL", None),
        ),
        (
            b"[W]" + STAMP + b" pid=9 ([STANDALONE MODE]) terminated with signal: "
            b"SIGSEGV (11), (PIDs left: 0)",
            Ending(9, "SIGSEGV", None),
        ),
    ],
    ids=["status 3", "status 0", "SIGKILL", "SIGSEGV"],
)
def test_ending_reads_how_the_jails_init_ended(line: bytes, expected: Ending) -> None:
    log = b"[I]" + START + line + b"\n[I]" + STAMP + b" Finished\n"
    assert ending(log) == expected


@pytest.mark.parametrize(
    "log",
    [
        b"",
        b"[I]" + START,
        b"[E]" + STAMP + b" clone(flags=CLONE_NEWUSER) failed: Operation not permitted\n",
        # Printed by the script, not nsjail's form: no pid, no mode.
        b"exited with status: 3\n",
    ],
    ids=["empty", "no ending yet", "failed start", "not nsjail's line"],
)
def test_ending_is_none_when_the_log_does_not_say(log: bytes) -> None:
    assert ending(log) is None


def test_summary_prefers_errors_fatals_and_warnings() -> None:
    log = (
        b"[I] starting\n[W] cgroup memory.swap not found\n[I] mounting\n"
        b"[E] mount('/opt/pyexec/sandbox') failed\n[F] cannot continue\n[I] done\n"
    )
    assert summary(log) == (
        "[W] cgroup memory.swap not found | [E] mount('/opt/pyexec/sandbox') failed"
        " | [F] cannot continue"
    )


def test_summary_keeps_the_last_five_wanted_lines() -> None:
    log = b"".join(f"[E] error {number}\n".encode() for number in range(8))
    assert summary(log) == " | ".join(f"[E] error {number}" for number in range(3, 8))


def test_summary_falls_back_to_the_last_lines_without_errors() -> None:
    log = b"".join(f"[I] step {number}\n".encode() for number in range(7))
    assert summary(log) == " | ".join(f"[I] step {number}" for number in range(2, 7))


@pytest.mark.parametrize("log", [b"", b"\n \n"])
def test_summary_of_no_log_says_so(log: bytes) -> None:
    assert summary(log) == "no log"


def test_summary_survives_bytes_that_are_not_utf8() -> None:
    assert summary(b"[E] bad \xff byte\n") == "[E] bad \ufffd byte"


@pytest.mark.parametrize(
    ("fragment", "sentence"),
    [(fragment, sentence) for fragments, sentence in DIAGNOSES for fragment in fragments],
)
def test_diagnose_names_the_cause_of_each_known_fragment(fragment: str, sentence: str) -> None:
    assert diagnose(f"the jail did not start: [E] ... {fragment} ... | [F] giving up") == sentence


@pytest.mark.parametrize(
    ("reason", "cause"),
    [
        (
            "[E][2026-11-27T21:30:00+0000][1] clone(flags=CLONE_NEWNET|CLONE_NEWUSER) "
            "failed: Operation not permitted",
            "gen2",
        ),
        (
            "[E][2026-11-27T21:30:00+0000][7] execve('/opt/pyexec/sandbox/bin/python') "
            "failed: No such file or directory",
            "make setup",
        ),
    ],
    ids=["no namespaces", "no sandbox python"],
)
def test_diagnose_turns_real_nsjail_errors_into_a_fix(reason: str, cause: str) -> None:
    assert cause in diagnose(reason)


def test_diagnose_of_anything_else_points_to_the_service_log() -> None:
    assert diagnose("the runner did not report ready: b'Segmentation fault'") == UNKNOWN_CAUSE
    assert diagnose("") == UNKNOWN_CAUSE


def test_a_self_test_that_x32_calls_got_past_is_diagnosed_as_such() -> None:
    sentence = diagnose("an x32 system call was not stopped by seccomp")
    assert "x32" in sentence
    assert "PYEXEC_NSJAIL" in sentence  # the fix: the nsjail that denies them itself


def test_a_warning_about_an_optional_mount_is_not_taken_for_a_missing_python() -> None:
    """nsjail warns about /proc/sched_debug (absent on 6.x kernels) on every jail; a
    jail that failed for another reason must not be blamed on the sandbox's Python."""
    reason = (
        "the jail was not ready within 30 s: "
        "[W][2026-11-28T00:20:00+0000][7] createMountTarget():142 "
        "open('/run/user/nsjail.0.root//proc/sched_debug', O_CREAT): No such file or directory"
        " | [E][2026-11-28T00:20:30+0000][7] something else went wrong"
    )
    assert diagnose(reason) == UNKNOWN_CAUSE


def test_a_missing_python_is_diagnosed_from_the_execve_error_line() -> None:
    reason = (
        "[W][...] open('/proc/sched_debug'): No such file or directory"
        " | [E][...] execve('/opt/pyexec/sandbox/bin/python') failed: No such file or directory"
    )
    assert "make setup" in diagnose(reason)
