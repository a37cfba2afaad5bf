"""pyexec.outcome: every way a run can end, from a hand-built RunRecord to the client's answer.

Each answer is validated against its JSON Schema (success or error) before a test
looks at it.
"""

from __future__ import annotations

import ast
import functools
import json
import resource
import types
from pathlib import Path
from typing import Any

import pytest

from pyexec import runner
from pyexec.answers import Outcome, kind_statuses
from pyexec.outcome import (
    MAX_EXCEPTION_CHARS,
    MAX_FIELD_CHARS,
    REPORT_FIELDS,
    RUNNER_KINDS,
    SELF_MADE_SUCCESS,
    interpret,
)
from pyexec.protocol import MAX_INT_DIGITS, report_frame
from pyexec.record import RunRecord
from pyexec.runner_code import RUNNER_SOURCE
from pyexec.schemas import load_schema, validator
from pyexec.settings import Limits

LIMITS = Limits(timeout_seconds=2.5, cpu_seconds=2, memory_mb=128)
LIMITS_BODY = {"timeout_seconds": 2.5, "cpu_seconds": 2, "memory_mb": 128}
MAX_OUTPUT_BYTES = 1024
SCHEMAS = {True: validator(load_schema("success")), False: validator(load_schema("error"))}
# Fields every answer about a run carries; ``verdict`` leaves them out.
COMMON_FIELDS = ("stdout", "stderr", "stdout_truncated", "stderr_truncated", "usage", "limits")

PRIVATE_CHANNEL = (
    "The script wrote into the runner's private result channel, so its result is lost."
)
CPU_LIMIT = "The script used more than its CPU time limit of 2 s."
MEMORY_LIMIT = "The script was killed for using more than its memory limit of 128 MB."
OK_REPORT = {"status": "ok", "result": 1}
FRAME = {"file": "script", "line": 2, "function": "main", "code": "raise ValueError('boom')"}


def exception_line(**fields: Any) -> bytes:
    """An exception report as the runner shapes one, with ``fields`` replaced."""
    report = {
        "status": "error",
        "kind": "exception",
        "error": "E in main(): m",
        "exception": {"type": "E", "message": "m"},
        "traceback": [FRAME],
        "traceback_text": "Traceback (most recent call last):\nE: m\n",
        **fields,
    }
    return line(report)


def answer(**fields: Any) -> Outcome:
    """interpret() of a RunRecord with LIMITS and ``fields``, its body checked
    against the schema of its status."""
    outcome = interpret(RunRecord(limits=LIMITS, **fields), MAX_OUTPUT_BYTES)
    SCHEMAS[outcome.status == 200].validate(outcome.body)
    return outcome


def line(report: Any) -> bytes:
    """A report as the runner sends it: JSON text and the line end."""
    return report_frame(json.dumps(report).encode())


def verdict(outcome: Outcome) -> tuple[int, dict[str, Any]]:
    """The status and what the body says beyond the fields every answer has."""
    return outcome.status, {k: v for k, v in outcome.body.items() if k not in COMMON_FIELDS}


def crashed(signal: str) -> str:
    return f"The script's process was killed by {signal} before main() returned."


def exited(code: int) -> str:
    return f"The script's process exited with code {code} before main() returned a result."


# --- trusted reports ---------------------------------------------------------------


def test_a_success_report_is_a_200_with_result_output_usage_and_limits() -> None:
    report = {
        "status": "ok",
        "result": {"a": [1, 2.5, None, "h\u00e9"]},
        "usage": {"cpu_time_ms": 12.5, "peak_memory_bytes": 2048},
    }
    outcome = answer(report=line(report), stdout=b"hi\n", stderr=b"careful\n", wall_seconds=0.25)
    assert outcome.status == 200
    assert outcome.headers == ()
    assert outcome.body == {
        "result": {"a": [1, 2.5, None, "h\u00e9"]},
        "stdout": "hi\n",
        "stderr": "careful\n",
        "stdout_truncated": False,
        "stderr_truncated": False,
        "usage": {"wall_time_ms": 250.0, "cpu_time_ms": 12.5, "peak_memory_bytes": 2048},
        "limits": LIMITS_BODY,
    }


def test_a_null_result_is_a_result() -> None:
    outcome = answer(report=line({"status": "ok", "result": None}))
    assert (outcome.status, outcome.body["result"]) == (200, None)


def test_output_bytes_that_are_not_utf8_become_replacement_characters() -> None:
    outcome = answer(
        report=line(OK_REPORT), stdout=b"ok \xff!", stderr=b"\xc3(", stderr_truncated=True
    )
    body = outcome.body
    assert (body["stdout"], body["stderr"]) == ("ok \ufffd!", "\ufffd(")
    assert (body["stdout_truncated"], body["stderr_truncated"]) == (False, True)


def test_an_integer_of_exactly_max_int_digits_with_a_minus_sign_is_trusted() -> None:
    digits = "9" * MAX_INT_DIGITS
    outcome = answer(report=f'{{"status": "ok", "result": -{digits}}}\n'.encode())
    assert outcome.status == 200
    assert outcome.body["result"] == -int(digits)


RUNNER_REPORTS: list[tuple[str, dict[str, Any]]] = [
    ("syntax_error", {"line": 1, "column": 5, "code": "x = = 1"}),
    (
        "exception",
        {
            "exception": {"type": "ValueError", "message": "boom"},
            "traceback": [FRAME],
            "traceback_text": "Traceback (most recent call last):\nValueError: boom\n",
        },
    ),
    (
        "exception",
        {
            "exception": {"type": "ModuleNotFoundError", "message": "No module named 'x'"},
            "traceback": [FRAME],
            "module": "x",
        },
    ),
    ("no_main", {}),
    ("main_not_callable", {}),
    ("main_async", {}),
    ("main_signature", {}),
    ("invalid_result", {"path": "result[0]", "type": "set"}),
    ("result_too_large", {"size_bytes": 2048, "limit_bytes": 1024}),
    ("exited", {"exit_code": 3}),
    ("memory_limit", {"exception": {"type": "MemoryError", "message": ""}, "traceback": []}),
    (
        "file_size_limit",
        {
            "exception": {"type": "OSError", "message": "[Errno 27] File too large"},
            "traceback": [],
        },
    ),
]


@pytest.mark.parametrize(
    ("kind", "fields"), RUNNER_REPORTS, ids=[f"{k}-{i}" for i, (k, _) in enumerate(RUNNER_REPORTS)]
)
def test_each_runner_error_passes_through_with_its_report_fields(
    kind: str, fields: dict[str, Any]
) -> None:
    usage = {"cpu_time_ms": 3.5, "peak_memory_bytes": 4096}
    report = {
        "status": "error",
        "kind": kind,
        "error": f"It was {kind}.",
        **fields,
        "usage": usage,
    }
    outcome = answer(report=line(report), stdout=b"out", wall_seconds=0.001)
    assert outcome.status == 400
    assert outcome.body == {
        "error": f"It was {kind}.",
        "kind": kind,
        **fields,
        "stdout": "out",
        "stderr": "",
        "stdout_truncated": False,
        "stderr_truncated": False,
        "usage": {"wall_time_ms": 1.0, **usage},
        "limits": LIMITS_BODY,
    }


def test_the_pass_through_table_covers_every_runner_kind_and_report_field() -> None:
    assert {kind for kind, _ in RUNNER_REPORTS} == RUNNER_KINDS
    assert {name for _, fields in RUNNER_REPORTS for name in fields} == REPORT_FIELDS


def test_report_fields_outside_the_allowed_ones_are_dropped() -> None:
    report = {
        "status": "error",
        "kind": "exception",
        "error": "ValueError in main(): boom",
        "signal": "SIGKILL",
        "stdout": "forged",
        "stdout_truncated": True,
        "allowed": ["GET"],
        "field": "script",
        "secret": "x",
    }
    outcome = answer(report=line(report), stdout=b"real")
    assert verdict(outcome) == (400, {"error": "ValueError in main(): boom", "kind": "exception"})
    assert (outcome.body["stdout"], outcome.body["stdout_truncated"]) == ("real", False)


def test_the_runner_s_last_resort_report_is_trusted() -> None:
    outcome = answer(report=report_frame(runner.LAST_RESORT_REPORT))
    assert verdict(outcome) == (
        400,
        {
            "error": "The result could not be reported: the script interfered with the runner.",
            "kind": "invalid_result",
        },
    )


def test_a_trusted_report_wins_over_how_the_jail_ended() -> None:
    outcome = answer(report=line(OK_REPORT), exit_signal="SIGKILL", exit_code=137)
    assert (outcome.status, outcome.body["result"]) == (200, 1)


# --- the kinds and fields, against the schema and the runner ------------------------


def test_every_runner_kind_is_an_error_kind_of_the_schema_with_status_400() -> None:
    statuses = kind_statuses()
    assert {kind: statuses[kind] for kind in RUNNER_KINDS} == dict.fromkeys(RUNNER_KINDS, 400)


def test_every_report_field_is_a_property_of_the_error_schema() -> None:
    assert set(load_schema("error")["properties"]) >= REPORT_FIELDS


def test_the_runner_kinds_are_exactly_the_kinds_runner_py_reports() -> None:
    tree = ast.parse(Path(runner.__file__).read_text(encoding="utf-8"))
    reported = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "Report"
        and isinstance(node.args[0], ast.Constant)
    }
    assert reported == RUNNER_KINDS


# --- the largest reports the runner writes ------------------------------------------------


@functools.cache
def jailed_runner() -> types.ModuleType:
    """The runner as the jail runs it: its source compiled as ``<string>``, so that
    its own frames are left out of tracebacks as they are in the jail."""
    module = types.ModuleType("jailed_runner")
    exec(compile(RUNNER_SOURCE, "<string>", "exec"), module.__dict__)
    return module


def runner_report(source: str) -> bytes:
    """The report line the runner writes for the script ``source`` (1 MiB result limit)."""
    jailed = jailed_runner()
    start = resource.getrusage(resource.RUSAGE_SELF)
    data: bytes = jailed._final_report(jailed._run_reported(source), start, 1 << 20)
    return report_frame(data)


# 60 frames deep, each with a 3,000-character function name and code line; an exception
# whose type name and message are far over the runner's caps, in characters that JSON
# sends as 12 bytes each.
MAXIMAL_EXCEPTION = """
def {name}(n):
    if n == 0:
        raise type("\\U0001F600" * 300, (Exception,), {{}})("\\U0001F600" * 5000)
    return {name}(n - 1)  # {comment}
def main():
    return {name}(60)
""".format(name="f" * 3000, comment="c" * 3000)


def test_the_largest_exception_report_the_runner_writes_is_trusted_at_its_caps() -> None:
    outcome = answer(report=runner_report(MAXIMAL_EXCEPTION))
    body = outcome.body
    assert (outcome.status, body["kind"]) == (400, "exception")
    # The caps checked here are exactly where the runner cuts.
    assert len(body["traceback"]) == runner.MAX_TRACEBACK_FRAMES
    assert len(body["exception"]["type"]) == MAX_EXCEPTION_CHARS["type"]
    assert len(body["exception"]["message"]) == MAX_EXCEPTION_CHARS["message"]
    assert len(body["traceback_text"]) == MAX_FIELD_CHARS["traceback_text"]
    # The runner does not cut a frame's strings, so they are not capped here either.
    assert {len(frame["function"]) for frame in body["traceback"]} == {3000}
    assert max(len(frame["code"]) for frame in body["traceback"]) > 3000


def test_a_syntax_error_whose_code_is_cut_at_the_runner_s_cap_is_trusted() -> None:
    outcome = answer(report=runner_report("x = = " + "1" * 1000 + "\n"))
    assert (outcome.body["kind"], len(outcome.body["code"])) == (
        "syntax_error",
        MAX_FIELD_CHARS["code"],
    )


def test_an_error_report_of_600_kb_is_trusted_when_the_runner_wrote_it() -> None:
    # The runner does not cut a result's path, so an error report can be as long
    # as the result channel allows: no smaller bound on its size would hold.
    report = runner_report('def main():\n    return {"k" * 300_000: {1}}\n')
    assert len(report) > 600_000
    outcome = answer(report=report)
    assert (outcome.body["kind"], outcome.body["type"]) == ("invalid_result", "set")
    assert len(outcome.body["path"]) == 300_010


def test_a_result_of_nearly_1_mib_nested_as_deep_as_the_runner_allows_is_trusted() -> None:
    source = (
        "def main():\n"
        "    value = 1\n"
        "    for _ in range(99):\n"
        "        value = [value]\n"
        "    return [value, 'x' * 1_048_000]\n"
    )
    report = runner_report(source)
    assert len(report) > 1_048_000
    outcome = answer(report=report)
    assert (outcome.status, len(outcome.body["result"][1])) == (200, 1_048_000)


# --- reports the runner could not have written ---------------------------------------

NOT_TRUSTED: list[tuple[str, bytes]] = [
    (
        "a kind the runner never reports",
        line({"status": "error", "kind": "timeout", "error": "x"}),
    ),
    ("an unknown kind", line({"status": "error", "kind": "hacked", "error": "x"})),
    ("an array", b"[1, 2]\n"),
    ("a string", b'"ok"\n'),
    ("null", b"null\n"),
    ("ok without a result", line({"status": "ok"})),
    ("an unknown status", line({"status": "fine", "result": 1})),
    ("an error that is not a string", line({"status": "error", "kind": "exception", "error": 5})),
    ("an error without kind", line({"status": "error", "error": "x"})),
    ("NaN", b'{"status": "ok", "result": NaN}\n'),
    ("Infinity", b'{"status": "ok", "result": [Infinity]}\n'),
    ("-Infinity", b'{"status": "ok", "result": -Infinity}\n'),
    ("1e999", b'{"status": "ok", "result": 1e999}\n'),
    ("-1e999", b'{"status": "ok", "result": {"x": -1e999}}\n'),
    ("NaN in usage", b'{"status": "ok", "result": 1, "usage": {"cpu_time_ms": NaN}}\n'),
    (
        "an integer one digit over MAX_INT_DIGITS",
        b'{"status": "ok", "result": ' + b"9" * (MAX_INT_DIGITS + 1) + b"}\n",
    ),
    (
        "a negative integer one digit over MAX_INT_DIGITS",
        b'{"status": "ok", "result": -' + b"9" * (MAX_INT_DIGITS + 1) + b"}\n",
    ),
    ("not JSON", b"{status: ok}\n"),
    ("not UTF-8", b'{"status": "ok", "result": "\xc3("}\n'),
    ("nested too deep to parse", b"[" * 100_000 + b"]" * 100_000 + b"\n"),
    ("garbage before the real report", b"garbage\n" + line(OK_REPORT)),
    # Reports that pass the first checks but would not make a valid answer.
    ("an empty error message", line({"status": "error", "kind": "exception", "error": ""})),
    (
        "an exit code that is a string",
        line({"status": "error", "kind": "exited", "error": "x", "exit_code": "3"}),
    ),
    (
        "an exception without type and message",
        line({"status": "error", "kind": "exception", "error": "x", "exception": {}}),
    ),
    (
        "a traceback that is not a list",
        line({"status": "error", "kind": "memory_limit", "error": "x", "traceback": "no"}),
    ),
    (
        "a line number that is a float",
        line({"status": "error", "kind": "syntax_error", "error": "x", "line": 1.5}),
    ),
    # Reports over the runner's own caps, or shaped as it never shapes them: refused
    # before the schema validation, whose cost grows with every item.
    ("a traceback of 20,000 frames", exception_line(traceback=[FRAME] * 20_000)),
    (
        "one frame more than the runner sends",
        exception_line(traceback=[FRAME] * (runner.MAX_TRACEBACK_FRAMES + 1)),
    ),
    (
        "an exception type one character over the runner's cap",
        exception_line(exception={"type": "E" * 201, "message": ""}),
    ),
    (
        "an exception message one character over the runner's cap",
        exception_line(exception={"type": "E", "message": "m" * 2001}),
    ),
    (
        "a traceback text one character over the runner's cap",
        exception_line(traceback_text="t" * 20_001),
    ),
    (
        "a syntax error's code one character over the runner's cap",
        line({"status": "error", "kind": "syntax_error", "error": "x", "code": "c" * 501}),
    ),
    (
        "an exception with a field the runner never writes",
        exception_line(exception={"type": "E", "message": "", "notes": [[1]] * 1000}),
    ),
    (
        "a frame with a field the runner never writes",
        exception_line(traceback=[{**FRAME, "x": 1}]),
    ),
    (
        "a frame without its code",
        exception_line(traceback=[{"file": "s", "line": 1, "function": "f"}]),
    ),
    ("a frame that is not an object", exception_line(traceback=["frame"])),
    ("a frame holding a list", exception_line(traceback=[{**FRAME, "code": [FRAME] * 100}])),
    (
        "a report field holding an object",
        line({"status": "error", "kind": "exited", "error": "x", "exit_code": {"a": [1] * 1000}}),
    ),
]


@pytest.mark.parametrize("report", [r for _, r in NOT_TRUSTED], ids=[i for i, _ in NOT_TRUSTED])
def test_a_complete_report_line_that_is_not_trusted_is_crashed_private_result_channel(
    report: bytes,
) -> None:
    assert verdict(answer(report=report, exit_code=None)) == (
        400,
        {"error": PRIVATE_CHANNEL, "kind": "crashed"},
    )


@pytest.mark.parametrize("kind", [[], {}], ids=["list", "object"])
def test_a_report_whose_kind_is_not_a_string_is_not_trusted(kind: Any) -> None:
    report = line({"status": "error", "kind": kind, "error": "x"})
    assert verdict(answer(report=report, exit_code=None)) == (
        400,
        {"error": PRIVATE_CHANNEL, "kind": "crashed"},
    )


def test_an_untrusted_report_of_a_collected_jail_is_explained_by_how_it_ended() -> None:
    report = line({"status": "error", "kind": "hacked", "error": "x"})
    outcome = answer(report=report, exit_code=139, exit_signal="SIGSEGV")
    assert verdict(outcome) == (
        400,
        {"error": crashed("SIGSEGV"), "kind": "crashed", "signal": "SIGSEGV"},
    )


def test_a_report_without_its_line_end_is_no_report() -> None:
    outcome = answer(
        report=json.dumps(OK_REPORT).encode(), exit_code=0, exit_status=0, cgroup_cpu_ms=1.0
    )
    assert verdict(outcome) == (400, {"error": exited(0), "kind": "exited", "exit_code": 0})


# --- limits hit, and their precedence --------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "kind", "message", "extra"),
    [
        pytest.param(
            {
                "stdout_truncated": True,
                "report_truncated": True,
                "cpu_exceeded": True,
                "timed_out": True,
                "report": line(OK_REPORT),
            },
            "output_limit",
            "The script printed more than 1024 bytes; the output was cut there and the "
            "script was stopped.",
            {},
            id="stdout_truncated beats everything",
        ),
        pytest.param(
            {
                "report_truncated": True,
                "cpu_exceeded": True,
                "timed_out": True,
                "report": line(OK_REPORT),
            },
            "result_too_large",
            "main() returned a result larger than the result size limit.",
            {},
            id="report_truncated beats the CPU and time limits and the report",
        ),
        pytest.param(
            {"cpu_exceeded": True, "timed_out": True, "report": line(OK_REPORT)},
            "cpu_limit",
            CPU_LIMIT,
            {"signal": "SIGKILL"},
            id="cpu_exceeded beats the timeout and the report",
        ),
        pytest.param(
            {"timed_out": True, "report": line(OK_REPORT)},
            "timeout",
            "The script did not finish within its time limit of 2.5 s.",
            {"signal": "SIGKILL"},
            id="timed_out beats the report",
        ),
        pytest.param(
            {"cpu_exceeded": True, "exit_signal": "SIGSEGV"},
            "cpu_limit",
            CPU_LIMIT,
            {"signal": "SIGKILL"},
            id="cpu_exceeded beats how the jail ended",
        ),
    ],
)
def test_limits_hit_take_precedence_in_order(
    fields: dict[str, Any], kind: str, message: str, extra: dict[str, Any]
) -> None:
    outcome = answer(**fields)
    assert verdict(outcome) == (400, {"error": message, "kind": kind, **extra})
    assert outcome.body["stdout_truncated"] is fields.get("stdout_truncated", False)


# --- no report: how the jail's init ended --------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(
            {"exit_signal": "SIGXCPU", "cgroup_cpu_ms": 100.0},
            {"kind": "cpu_limit", "error": CPU_LIMIT, "signal": "SIGXCPU"},
            id="SIGXCPU is cpu_limit whatever the CPU used",
        ),
        pytest.param(
            {"exit_signal": "SIGKILL", "cgroup_cpu_ms": 1500.0},
            {"kind": "cpu_limit", "error": CPU_LIMIT, "signal": "SIGKILL"},
            id="SIGKILL within half a second of the CPU budget, OOM unknown, is cpu_limit",
        ),
        pytest.param(
            {"exit_signal": "SIGKILL", "cgroup_cpu_ms": 2600.0, "oom_killed": False},
            {"kind": "cpu_limit", "error": CPU_LIMIT, "signal": "SIGKILL"},
            id="SIGKILL over the CPU budget without an OOM kill is cpu_limit",
        ),
        pytest.param(
            {"exit_signal": "SIGKILL", "cgroup_cpu_ms": 2600.0, "oom_killed": True},
            {"kind": "memory_limit", "error": MEMORY_LIMIT, "signal": "SIGKILL"},
            id="SIGKILL with an OOM kill is memory_limit even over the CPU budget",
        ),
        pytest.param(
            {"exit_signal": "SIGKILL", "cgroup_cpu_ms": 1499.0},
            {"kind": "memory_limit", "error": MEMORY_LIMIT, "signal": "SIGKILL"},
            id="SIGKILL under the CPU budget is memory_limit",
        ),
        pytest.param(
            {"exit_signal": "SIGKILL", "cpu_seconds": 2.3, "startup_cpu_ms": 500.0},
            {"kind": "cpu_limit", "error": CPU_LIMIT, "signal": "SIGKILL"},
            id="without a cgroup the CPU is rusage less the warm-up: 1.8 s is over",
        ),
        pytest.param(
            {"exit_signal": "SIGKILL", "cpu_seconds": 2.3, "startup_cpu_ms": 1000.0},
            {"kind": "memory_limit", "error": MEMORY_LIMIT, "signal": "SIGKILL"},
            id="without a cgroup the CPU is rusage less the warm-up: 1.3 s is under",
        ),
        pytest.param(
            {"exit_signal": "SIGSEGV", "exit_code": 139},
            {"kind": "crashed", "error": crashed("SIGSEGV"), "signal": "SIGSEGV"},
            id="SIGSEGV is crashed",
        ),
        pytest.param(
            {"exit_signal": "SIGSEGV", "exit_code": 0},
            {"kind": "crashed", "error": crashed("SIGSEGV"), "signal": "SIGSEGV"},
            id="nsjail's exit line wins over its exit code",
        ),
        pytest.param(
            {"exit_status": 3, "exit_code": 3},
            {"kind": "exited", "error": exited(3), "exit_code": 3},
            id="exit status 3 is exited 3",
        ),
        pytest.param(
            {"exit_status": 137, "exit_code": 137, "cgroup_cpu_ms": 2600.0},
            {"kind": "exited", "error": exited(137), "exit_code": 137},
            id="exit status 137 is an exit, not a SIGKILL",
        ),
        pytest.param(
            {"exit_status": 0, "exit_code": 0},
            {"kind": "exited", "error": exited(0), "exit_code": 0},
            id="exit status 0 without a report is exited 0",
        ),
    ],
)
def test_without_a_report_nsjail_s_exit_line_explains_the_end(
    fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert verdict(answer(**fields)) == (400, expected)


@pytest.mark.parametrize(
    ("exit_code", "cgroup_cpu_ms", "expected"),
    [
        (137, 100.0, {"kind": "memory_limit", "error": MEMORY_LIMIT, "signal": "SIGKILL"}),
        (137, 1800.0, {"kind": "cpu_limit", "error": CPU_LIMIT, "signal": "SIGKILL"}),
        (-9, 100.0, {"kind": "memory_limit", "error": MEMORY_LIMIT, "signal": "SIGKILL"}),
        (152, 100.0, {"kind": "cpu_limit", "error": CPU_LIMIT, "signal": "SIGXCPU"}),
        (-11, None, {"kind": "crashed", "error": crashed("SIGSEGV"), "signal": "SIGSEGV"}),
        (139, None, {"kind": "crashed", "error": crashed("SIGSEGV"), "signal": "SIGSEGV"}),
        (
            128 + 200,
            None,
            {"kind": "crashed", "error": crashed("signal 200"), "signal": "signal 200"},
        ),
        (-200, None, {"kind": "crashed", "error": crashed("signal 200"), "signal": "signal 200"}),
        (2, None, {"kind": "exited", "error": exited(2), "exit_code": 2}),
        (128, None, {"kind": "exited", "error": exited(128), "exit_code": 128}),
        (0, None, {"kind": "exited", "error": exited(0), "exit_code": 0}),
    ],
)
def test_without_nsjail_s_exit_line_its_exit_code_explains_the_end(
    exit_code: int, cgroup_cpu_ms: float | None, expected: dict[str, Any]
) -> None:
    outcome = answer(exit_code=exit_code, cgroup_cpu_ms=cgroup_cpu_ms)
    assert verdict(outcome) == (400, expected)


# --- usage ------------------------------------------------------------------------------


def test_the_cgroup_s_figures_win_over_the_reported_ones() -> None:
    report = {"status": "ok", "result": 1, "usage": {"cpu_time_ms": 5, "peak_memory_bytes": 10}}
    outcome = answer(
        report=line(report),
        wall_seconds=1.2345678,
        cgroup_cpu_ms=123.4567,
        cgroup_peak_bytes=4096,
        cpu_seconds=9.0,
        init_peak_bytes=999,
    )
    assert outcome.body["usage"] == {
        "wall_time_ms": 1234.568,
        "cpu_time_ms": 123.457,
        "peak_memory_bytes": 4096,
    }


@pytest.mark.parametrize(
    ("cgroup", "expected"),
    [
        ({"cgroup_cpu_ms": 50.0}, {"cpu_time_ms": 50.0, "peak_memory_bytes": 2048}),
        ({"cgroup_peak_bytes": 8192}, {"cpu_time_ms": 12.5, "peak_memory_bytes": 8192}),
        ({}, {"cpu_time_ms": 12.5, "peak_memory_bytes": 2048}),
    ],
    ids=["cgroup CPU only", "cgroup peak only", "no cgroup"],
)
def test_each_cgroup_figure_replaces_only_its_own_reported_figure(
    cgroup: dict[str, Any], expected: dict[str, float]
) -> None:
    usage = {"cpu_time_ms": 12.5, "peak_memory_bytes": 2048}
    outcome = answer(report=line({"status": "ok", "result": 1, "usage": usage}), **cgroup)
    assert outcome.body["usage"] == {"wall_time_ms": 0.0, **expected}


@pytest.mark.parametrize(
    "usage",
    [
        {"cpu_time_ms": True, "peak_memory_bytes": 1},
        {"cpu_time_ms": 1.0, "peak_memory_bytes": False},
        {"cpu_time_ms": -1.0, "peak_memory_bytes": 1},
        {"cpu_time_ms": 1.0, "peak_memory_bytes": -1},
        {"cpu_time_ms": 2**53, "peak_memory_bytes": 1},
        {"cpu_time_ms": 1.0, "peak_memory_bytes": 10**30},
        {"cpu_time_ms": "5", "peak_memory_bytes": 1},
        {"cpu_time_ms": None, "peak_memory_bytes": 1},
        {"cpu_time_ms": 1.0},
        [1.0, 1],
        "fast",
    ],
)
def test_reported_usage_that_is_not_plausible_is_ignored_for_rusage_less_the_warm_up(
    usage: Any,
) -> None:
    outcome = answer(
        report=line({"status": "ok", "result": 1, "usage": usage}),
        cpu_seconds=0.75,
        startup_cpu_ms=250.0,
        init_peak_bytes=3 * 1024 * 1024,
    )
    assert outcome.body["usage"] == {
        "wall_time_ms": 0.0,
        "cpu_time_ms": 500.0,
        "peak_memory_bytes": 3 * 1024 * 1024,
    }


def test_reported_usage_just_under_two_to_the_53_is_taken() -> None:
    usage = {"cpu_time_ms": 2**53 - 1, "peak_memory_bytes": 2**53 - 1}
    outcome = answer(report=line({"status": "ok", "result": 1, "usage": usage}))
    assert outcome.body["usage"] == {"wall_time_ms": 0.0, **usage}


def test_rusage_less_a_larger_warm_up_is_zero_cpu_not_negative() -> None:
    outcome = answer(exit_status=0, cpu_seconds=0.1, startup_cpu_ms=500.0)
    assert outcome.body["usage"]["cpu_time_ms"] == 0.0


@pytest.mark.parametrize(
    ("rlimit", "oom", "kind"),
    [
        (1, None, "cpu_limit"),  # lowered by the script: its own limit, not memory
        (1, False, "cpu_limit"),
        (1, True, "memory_limit"),  # the cgroup says OOM: that wins
        (3, None, "memory_limit"),  # the runner's own limit (1 + 2 s): not lowered
        (None, None, "memory_limit"),
    ],
    ids=["lowered", "lowered, no OOM", "lowered but OOM", "runner's own", "unknown"],
)
def test_a_sigkill_under_a_cpu_limit_the_script_lowered_itself_is_cpu_limit(
    rlimit: int | None, oom: bool | None, kind: str
) -> None:
    outcome = interpret(
        RunRecord(
            limits=Limits(timeout_seconds=4.0, cpu_seconds=2, memory_mb=256),
            startup_cpu_ms=15.0,
            exit_code=137,
            exit_signal="SIGKILL",
            oom_killed=oom,
            init_cpu_rlimit_seconds=rlimit,
        ),
        1 << 20,
    )
    assert (outcome.status, outcome.body["kind"]) == (400, kind)


def test_the_success_fields_that_skip_the_schema_check_are_the_schema_s_but_files() -> None:
    """What a plain success answer carries is checked by the schema in the tests,
    not on the request path; the output files' listing, taken from the runner's
    report, always is."""
    properties = set(load_schema("success")["properties"])
    assert properties - {"files", "files_collected"} == SELF_MADE_SUCCESS
