"""What a run means for the client: turn a RunRecord into an HTTP status and JSON body."""

from __future__ import annotations

import json
import math
import signal
from typing import Any

from pyexec.answers import Outcome, error
from pyexec.files import FileCaps, answer_entries
from pyexec.protocol import MAX_INT_DIGITS, first_line, split_report
from pyexec.record import RunRecord
from pyexec.runner import MAX_TRACEBACK_FRAMES
from pyexec.schemas import inlined, load_schema, validator
from pyexec.settings import Limits

# Kinds the in-jail runner may report; anything else on the result channel means
# the script tampered with it. (tests/unit check these against the error schema and
# against the kinds runner.py writes.)
RUNNER_KINDS = frozenset(
    {
        "syntax_error",
        "exception",
        "no_main",
        "main_not_callable",
        "main_async",
        "main_signature",
        "invalid_result",
        "result_too_large",
        "exited",
        "memory_limit",
        "file_size_limit",
    }
)
# Fields a runner report may add to an error body.
REPORT_FIELDS = frozenset(
    {
        "exception",
        "traceback",
        "traceback_text",
        "line",
        "column",
        "code",
        "path",
        "type",
        "exit_code",
        "size_bytes",
        "limit_bytes",
        "module",
    }
)
# The runner's own caps on the report fields it cuts (runner.py; characters of the
# decoded JSON). tests/unit/test_outcome.py pins each to what the runner writes.
# Other strings (the error sentence, a path, a type name, a frame's file, function
# and code) are not cut by the runner: the result channel's cap bounds them.
MAX_FIELD_CHARS = {"code": 500, "traceback_text": 20_000, "module": 200}
MAX_EXCEPTION_CHARS = {"type": 200, "message": 2_000}
FRAME_KEYS = frozenset({"file", "line", "function", "code"})
_SCHEMAS = {
    True: validator(inlined(load_schema("success"))),
    False: validator(inlined(load_schema("error"))),
}
# A success answer made of these fields needs no schema check on the request path:
# "result" is parsed JSON (any value is valid), the rest is the service's own (the
# tests validate every answer). Only the listing of output files is taken from the
# runner's report as it is, so an answer with one is checked.
SELF_MADE_SUCCESS = frozenset(
    {"result", "stdout", "stderr", "stdout_truncated", "stderr_truncated", "usage", "limits"}
)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _parse_report(record: RunRecord, caps: FileCaps | None) -> dict[str, Any] | None:
    """The runner's report if it is one the runner could have written, else None;
    with the returned files' answer entries in ``files`` when they were asked for."""
    frame = split_report(record.report, record.wants_files)
    if frame is None or record.report_truncated:
        return None
    payload, blob = frame
    try:
        report = json.loads(
            payload,
            parse_constant=_no_constants,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except (ValueError, RecursionError):
        return None
    if not isinstance(report, dict):
        return None
    if record.wants_files:
        entries = answer_entries(report.get("files"), blob, caps) if caps else None
        if entries is None:
            return None
        report["files"] = entries
    elif "files" in report:
        return None
    if report.get("status") == "ok" and "result" in report:
        return report
    kind = report.get("kind")
    if (
        report.get("status") == "error"
        and isinstance(kind, str)
        and kind in RUNNER_KINDS
        and isinstance(report.get("error"), str)
        and all(_fits(name, report[name]) for name in REPORT_FIELDS if name in report)
    ):
        return report
    return None


def _fits(name: str, value: Any) -> bool:
    """Whether a report field is within the runner's caps and of the shape it writes.

    Checked before the answer's schema validation, whose cost grows with every item
    it walks (20,000 forged frames cost the service half a second of CPU) and which
    has no length limits. What is checked here costs at most MAX_TRACEBACK_FRAMES
    small objects, so a forged error report costs no more than an honest one; its
    size is already bounded by the result channel's cap, as an honest result is.
    """
    if name == "exception":
        return (
            isinstance(value, dict)
            and value.keys() == MAX_EXCEPTION_CHARS.keys()
            and all(_is_scalar(value[key], cap) for key, cap in MAX_EXCEPTION_CHARS.items())
        )
    if name == "traceback":
        return (
            isinstance(value, list)
            and len(value) <= MAX_TRACEBACK_FRAMES
            and all(_is_frame(frame) for frame in value)
        )
    return _is_scalar(value, MAX_FIELD_CHARS.get(name))


def _is_frame(frame: Any) -> bool:
    """A traceback item as the runner writes it: exactly its four scalar fields."""
    return (
        isinstance(frame, dict)
        and frame.keys() == FRAME_KEYS
        and all(_is_scalar(value, None) for value in frame.values())
    )


def _is_scalar(value: Any, max_chars: int | None) -> bool:
    """A JSON scalar (nothing nested), and a string no longer than ``max_chars``."""
    if isinstance(value, str):
        return max_chars is None or len(value) <= max_chars
    return value is None or isinstance(value, (bool, int, float))


def _no_constants(name: str) -> Any:
    """NaN and Infinity are not JSON: a report holding them was not the runner's."""
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    """1e999 parses as inf: not JSON either, so not the runner's."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def _bounded_int(text: str) -> int:
    """The runner refuses integers over MAX_INT_DIGITS digits; so does the parser here."""
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError("integer too long")
    return int(text)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _ending(record: RunRecord) -> tuple[str | None, int | None]:
    """(signal name, exit status) of the jail's init: from nsjail's log when it has
    the line, else from nsjail's own exit code (128 + N for signal N)."""
    if record.exit_signal is not None or record.exit_status is not None:
        return record.exit_signal, record.exit_status
    code = record.exit_code
    if code is not None and code > 128:
        return _signal_name(code - 128), None
    if code is not None and code < 0:
        return _signal_name(-code), None
    return None, code


def _without_report(record: RunRecord, limits: Limits) -> tuple[str, str, dict[str, Any]]:
    """Explain a run that ended without a report, from how its init ended.

    Inside its pid namespace the runner is init: nothing in the jail can SIGKILL
    it, so a SIGKILL came from outside: the CPU hard limit or the cgroup OOM killer
    (our own timeout is recorded separately). The cgroup's oom_kill counter, when
    still readable, settles which.
    """
    signal_name, status = _ending(record)
    own_limit = _own_cpu_limit(record, limits)
    if signal_name in ("SIGKILL", "SIGXCPU") and own_limit is not None:
        return (
            "cpu_limit",
            f"The script lowered its own CPU time limit to {own_limit} s and used it up.",
            {"signal": signal_name},
        )
    cpu_used = _script_cpu_ms(record) / 1000
    over_cpu = cpu_used >= limits.cpu_seconds - 0.5
    if signal_name == "SIGXCPU" or (
        signal_name == "SIGKILL" and over_cpu and record.oom_killed is not True
    ):
        return (
            "cpu_limit",
            f"The script used more than its CPU time limit of {limits.cpu_seconds:g} s.",
            {"signal": signal_name},
        )
    if signal_name == "SIGKILL":
        return (
            "memory_limit",
            f"The script was killed for using more than its memory limit of "
            f"{limits.memory_mb} MB.",
            {"signal": signal_name},
        )
    if signal_name is not None:
        return (
            "crashed",
            f"The script's process was killed by {signal_name} before main() returned.",
            {"signal": signal_name},
        )
    return (
        "exited",
        f"The script's process exited with code {status} before main() returned a result.",
        {"exit_code": status},
    )


def _own_cpu_limit(record: RunRecord, limits: Limits) -> int | None:
    """The CPU limit the script set for itself, when it lowered the one the runner set
    at the hand-over (the CPU used so far, rounded up, plus the run's limit), and the
    kernel did not kill it for memory."""
    own = record.init_cpu_rlimit_seconds
    set_by_runner = math.ceil(record.startup_cpu_ms / 1000) + limits.cpu_seconds
    if own is None or own >= set_by_runner - 1 or record.oom_killed is True:
        return None
    return own


def _script_cpu_ms(record: RunRecord) -> float:
    """CPU the run spent after the hand-over: the jail's cgroup when it counted it
    (every process of the jail), else nsjail's rusage less the warm-up."""
    if record.cgroup_cpu_ms is not None:
        return record.cgroup_cpu_ms
    return max(0.0, record.cpu_seconds * 1000 - record.startup_cpu_ms)


def _usage(record: RunRecord, report: dict[str, Any] | None) -> dict[str, float]:
    """Wall time from our clock; CPU and peak memory from the jail's cgroup, else the
    runner's report, else nsjail's CPU less the warm-up and the init's sampled peak."""
    usage: dict[str, float] = {"wall_time_ms": round(record.wall_seconds * 1000, 3)}
    reported = report.get("usage") if report is not None else None
    if isinstance(reported, dict) and all(
        isinstance(reported.get(key), (int, float))
        and not isinstance(reported.get(key), bool)
        and 0 <= reported[key] < 2**53
        for key in ("cpu_time_ms", "peak_memory_bytes")
    ):
        usage["cpu_time_ms"] = float(reported["cpu_time_ms"])
        usage["peak_memory_bytes"] = int(reported["peak_memory_bytes"])
    else:
        usage["cpu_time_ms"] = round(_script_cpu_ms(record), 3)
        usage["peak_memory_bytes"] = record.init_peak_bytes or 0
    # The jail's cgroup saw every process of the jail and cannot be forged by the
    # script: its figures win where it has them.
    if record.cgroup_cpu_ms is not None:
        usage["cpu_time_ms"] = round(_script_cpu_ms(record), 3)
    if record.cgroup_peak_bytes is not None:
        usage["peak_memory_bytes"] = record.cgroup_peak_bytes
    elif record.jail_peak_bytes is not None:
        # Without cgroups, the watchdog's sum over all of the jail's processes.
        usage["peak_memory_bytes"] = max(int(usage["peak_memory_bytes"]), record.jail_peak_bytes)
    return usage


def _run_fields(
    record: RunRecord, report: dict[str, Any] | None, limits: Limits
) -> dict[str, Any]:
    """The fields every answer about a run carries (schemas/run.schema.json); with
    ``files`` and ``files_collected`` when the request had output_files (collected
    only when the runner reported: a killed run's files are not read)."""
    files: dict[str, Any] = {}
    if record.wants_files:
        collected = report is not None and _answers_with_report(record)
        files["files"] = report["files"] if collected and report is not None else []
        files["files_collected"] = collected
    return {
        **files,
        "stdout": _decode(record.stdout),
        "stderr": _decode(record.stderr),
        "stdout_truncated": record.stdout_truncated,
        "stderr_truncated": record.stderr_truncated,
        "usage": _usage(record, report),
        "limits": {
            "timeout_seconds": limits.timeout_seconds,
            "cpu_seconds": limits.cpu_seconds,
            "memory_mb": limits.memory_mb,
        },
    }


def _is_valid(answer: Outcome) -> bool:
    """Whether an answer built from the runner's report is one its schema allows."""
    if answer.status == 200 and answer.body.keys() <= SELF_MADE_SUCCESS:
        return True
    return bool(_SCHEMAS[answer.status == 200].is_valid(answer.body))


def _answers_with_report(record: RunRecord) -> bool:
    """Whether the answer comes from the runner's report: no limit was hit first."""
    return not (
        record.stdout_truncated
        or record.report_truncated
        or record.cpu_exceeded
        or record.memory_exceeded
        or record.timed_out
    )


# A limit error's kind -> the request field that raises that limit.
LIMIT_FIELDS = {
    "timeout": "timeout_seconds",
    "cpu_limit": "cpu_seconds",
    "memory_limit": "memory_mb",
}


def interpret(
    record: RunRecord,
    max_output_bytes: int,
    caps: FileCaps | None = None,
    maxima: Limits | None = None,
) -> Outcome:
    """The client's answer for one run; a limit error also names the request field
    that raises the limit and this server's maximum for it (``maxima``)."""
    outcome = _interpret(record, max_output_bytes, caps)
    kind = outcome.body.get("kind", "")
    field = LIMIT_FIELDS.get(kind)
    if field is None or maxima is None or record.limits is None:
        return outcome
    if kind == "cpu_limit" and _own_cpu_limit(record, record.limits) is not None:
        return outcome  # the script lowered its own limit: raising the field won't help
    asked, maximum = getattr(record.limits, field), getattr(maxima, field)
    if asked < maximum:
        advice = f" Raise {field}, up to {maximum:g}."
    else:
        advice = f" The request already had this server's maximum {field} ({maximum:g})."
    body = {**outcome.body, "field": field, "maximum": maximum}
    body["error"] = body["error"] + advice
    return Outcome(outcome.status, body, outcome.headers)


def _interpret(record: RunRecord, max_output_bytes: int, caps: FileCaps | None) -> Outcome:
    """The client's answer for one run. Limits hit take precedence over reports."""
    assert record.limits is not None
    limits = record.limits
    report = _parse_report(record, caps)
    common = _run_fields(record, report, limits)
    if record.stdout_truncated:
        return error(
            "output_limit",
            f"The script printed more than {max_output_bytes} bytes; the output was "
            "cut there and the script was stopped.",
            **common,
        )
    if record.report_truncated:
        return error(
            "result_too_large",
            "main() returned a result larger than the result size limit.",
            **common,
        )
    if record.memory_exceeded:
        return error(
            "memory_limit",
            f"The script's processes together used more than its memory limit of "
            f"{limits.memory_mb} MB, and the jail was stopped.",
            signal="SIGKILL",
            **common,
        )
    if record.cpu_exceeded:
        return error(
            "cpu_limit",
            f"The script used more than its CPU time limit of {limits.cpu_seconds:g} s.",
            signal="SIGKILL",
            **common,
        )
    if record.timed_out:
        return error(
            "timeout",
            f"The script did not finish within its time limit of {limits.timeout_seconds:g} s.",
            signal="SIGKILL",
            **common,
        )
    if report is not None:
        if report["status"] == "ok":
            answer = Outcome(200, {"result": report["result"], **common})
        else:
            extra = {k: v for k, v in report.items() if k in REPORT_FIELDS}
            answer = error(report["kind"], report["error"], **extra, **common)
        # The script runs in the runner's interpreter and can write on its channel:
        # a report that does not make a valid answer is not the runner's.
        if _is_valid(answer):
            return answer
        common = _run_fields(record, None, limits)  # nothing of a forged report
    if first_line(record.report) is not None and record.exit_code is None:
        return error(
            "crashed",
            "The script wrote into the runner's private result channel, so its result is lost.",
            **common,
        )
    kind, message, extra = _without_report(record, limits)
    return error(kind, message, **extra, **common)
