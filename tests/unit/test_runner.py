"""pyexec.runner, imported as a module (standard library only), and once started as
the jail starts it, with the service's own interpreter over real pipes.

The functions are called directly here; only the tests of traceback frames compile
the runner's source as ``<string>``, as ``python -c`` does inside the jail.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import linecache
import os
import resource
import select
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pyexec import protocol, runner
from pyexec.command import PYTHON_FLAGS
from pyexec.runner_code import RUNNER_SOURCE

MAX_INT: int = 10**protocol.MAX_INT_DIGITS
STR_FAILED = "<the exception's message could not be produced: its __str__ raised>"
NOT_SERIALIZABLE = "which is not JSON-serializable."
COERCE = 'or send "coerce_result": true'
KEYS = f"JSON object keys must be strings. Convert them with str(), {COERCE}."
NAN = f"Return None in its place (e.g. None if math.isnan(x) else x), {COERCE} to get null."
GENERIC = f"Convert it to a list, dict, str or number, {COERCE} for the types it knows."
BYTES = (
    "Return base64.b64encode(value).decode() (import base64), or write it to a file and "
    f'ask for it with "output_files", {COERCE}.'
)
FRAME_BOOM = {"file": "script", "line": 2, "function": "main", "code": "raise ValueError('boom')"}


@pytest.fixture(autouse=True)
def _forget_scripts() -> Iterator[None]:
    """_load_main keeps each script's source for tracebacks (in linecache too)."""
    yield
    runner._SCRIPT_SOURCE.clear()
    linecache.cache.pop(runner.SCRIPT_FILENAME, None)


@pytest.fixture
def jailed() -> types.ModuleType:
    """The runner as the jail runs it: its source compiled as ``<string>``."""
    module = types.ModuleType("jailed_runner")
    exec(compile(RUNNER_SOURCE, "<string>", "exec"), module.__dict__)
    return module


def report_of(call: Callable[[], object]) -> dict[str, Any]:
    """The payload of the Report that ``call`` raises."""
    with pytest.raises(runner.Report) as caught:
        call()
    return caught.value.payload


def invalid(error: str, **fields: Any) -> dict[str, Any]:
    return {"status": "error", "kind": "invalid_result", "error": error, **fields}


def nested(levels: int) -> Any:
    """1 inside ``levels`` lists."""
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


# --- _to_json ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ((1, (2, 3)), [1, [2, 3]]),
        (
            {"a": {"b": [1, {"c": None}]}, "d": (True, False)},
            {"a": {"b": [1, {"c": None}]}, "d": [True, False]},
        ),
        ([], []),
        ({}, {}),
        ("h\u00e9 \ud800", "h\u00e9 \ud800"),
        (-0.0, -0.0),
        (MAX_INT - 1, MAX_INT - 1),
        (-(MAX_INT - 1), -(MAX_INT - 1)),
        (nested(100), nested(100)),
    ],
    ids=[
        "tuples",
        "nested dicts",
        "empty list",
        "empty dict",
        "strings",
        "negative zero",
        "the largest int",
        "the smallest int",
        "100 levels",
    ],
)
def test_plain_values_are_copied_with_tuples_as_lists(value: Any, expected: Any) -> None:
    assert runner._to_json(value) == expected


def test_bools_stay_bools_and_ints_stay_ints() -> None:
    converted = runner._to_json([True, 1, False, 0])
    assert [type(item) for item in converted] == [bool, int, bool, int]


def test_a_value_shared_but_not_circular_is_copied_each_time() -> None:
    shared = [1]
    assert runner._to_json([shared, shared, {"x": shared}]) == [[1], [1], {"x": [1]}]


class Thing:
    """A type that is not JSON."""


class DataFrame:
    """Looks like pandas' DataFrame to the runner's hint."""

    __module__ = "pandas.core.frame"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(
            {1: "x"},
            invalid(
                f"result has a key of type int; {KEYS}",
                path="result",
                type="int",
            ),
            id="int key",
        ),
        pytest.param(
            {"a": [{(1, 2): 0}]},
            invalid(
                f"result['a'][0] has a key of type tuple; {KEYS}",
                path="result['a'][0]",
                type="tuple",
            ),
            id="nested tuple key",
        ),
        pytest.param(
            [1.0, float("nan")],
            invalid(
                "result[1] is nan, which JSON cannot represent "
                f"(NaN and Infinity are not valid JSON). {NAN}",
                path="result[1]",
                type="float",
            ),
            id="NaN",
        ),
        pytest.param(
            {"x": float("inf")},
            invalid(
                "result['x'] is inf, which JSON cannot represent "
                f"(NaN and Infinity are not valid JSON). {NAN}",
                path="result['x']",
                type="float",
            ),
            id="inf",
        ),
        pytest.param(
            float("-inf"),
            invalid(
                "result is -inf, which JSON cannot represent "
                f"(NaN and Infinity are not valid JSON). {NAN}",
                path="result",
                type="float",
            ),
            id="-inf",
        ),
        pytest.param(
            MAX_INT,
            invalid(
                "result is an integer with more than 4300 digits, too long to send as JSON; "
                "return it as a string.",
                path="result",
                type="int",
            ),
            id="huge int",
        ),
        pytest.param(
            [-MAX_INT],
            invalid(
                "result[0] is an integer with more than 4300 digits, too long to send as "
                "JSON; return it as a string.",
                path="result[0]",
                type="int",
            ),
            id="huge negative int",
        ),
        pytest.param(
            {1, 2},
            invalid(
                f"result is of type set, {NOT_SERIALIZABLE} "
                f"Return sorted(value) (or list(value)), {COERCE}.",
                path="result",
                type="set",
            ),
            id="set",
        ),
        pytest.param(
            [frozenset()],
            invalid(
                f"result[0] is of type frozenset, {NOT_SERIALIZABLE} "
                f"Return sorted(value) (or list(value)), {COERCE}.",
                path="result[0]",
                type="frozenset",
            ),
            id="frozenset",
        ),
        pytest.param(
            {"raw": b"x"},
            invalid(
                f"result['raw'] is of type bytes, {NOT_SERIALIZABLE} {BYTES}",
                path="result['raw']",
                type="bytes",
            ),
            id="bytes",
        ),
        pytest.param(
            DataFrame(),
            invalid(
                f"result is of type pandas.core.frame.DataFrame, {NOT_SERIALIZABLE} "
                'Return json.loads(df.to_json(orient="records", date_format="iso")), '
                f"{COERCE}.",
                path="result",
                type="pandas.core.frame.DataFrame",
            ),
            id="pandas-like",
        ),
        pytest.param(
            bytearray(b"x"),
            invalid(
                f"result is of type bytearray, {NOT_SERIALIZABLE} {BYTES}",
                path="result",
                type="bytearray",
            ),
            id="bytearray",
        ),
        pytest.param(
            [Thing()],
            invalid(
                f"result[0] is of type {__name__}.Thing, {NOT_SERIALIZABLE} {GENERIC}",
                path="result[0]",
                type=f"{__name__}.Thing",
            ),
            id="a class of the script",
        ),
    ],
)
def test_values_json_cannot_hold_are_refused_with_their_path_and_type(
    value: Any, expected: dict[str, Any]
) -> None:
    assert report_of(lambda: runner._to_json(value)) == expected


def test_a_list_that_contains_itself_is_refused() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    assert report_of(lambda: runner._to_json(loop)) == invalid(
        "result[1] contains itself (a circular reference)."
    )


def test_a_dict_that_contains_itself_is_refused() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = {"again": loop}
    assert report_of(lambda: runner._to_json(loop)) == invalid(
        "result['self']['again'] contains itself (a circular reference)."
    )


def test_nesting_over_100_levels_is_refused() -> None:
    assert report_of(lambda: runner._to_json(nested(101))) == invalid(
        "result" + "[0]" * 101 + " is nested more than 100 levels deep."
    )


class LyingInt(int):
    def __index__(self) -> int:
        return MAX_INT

    def __int__(self) -> int:
        return MAX_INT

    def __abs__(self) -> int:
        return MAX_INT

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class LyingStr(str):
    def __str__(self) -> str:
        return "changed"


class LyingFloat(float):
    def __float__(self) -> float:
        return float("nan")


class LyingDict(dict[str, Any]):
    def items(self) -> Any:
        raise RuntimeError("no items")

    def __iter__(self) -> Iterator[str]:
        return iter(["forged"])


class LyingList(list[Any]):
    def __iter__(self) -> Iterator[Any]:
        return iter(["forged"])


class LyingTuple(tuple[Any, ...]):
    def __iter__(self) -> Iterator[Any]:
        return iter(["forged"])


def test_subclasses_are_read_through_the_builtins_not_their_overrides() -> None:
    value = [
        LyingInt(3),
        LyingStr("kept"),
        LyingFloat(0.5),
        LyingDict(a=1),
        LyingList([1, 2]),
        LyingTuple((3,)),
        {LyingStr("key"): 1},
    ]
    converted = runner._to_json(value)
    assert converted == [3, "kept", 0.5, {"a": 1}, [1, 2], [3], {"key": 1}]
    assert [type(item) for item in converted] == [int, str, float, dict, list, list, dict]
    assert [type(key) for key in converted[6]] == [str]


numpy_spec = importlib.util.find_spec("numpy")


@pytest.mark.skipif(
    numpy_spec is None,
    reason="numpy is not in the service's venv (only in the jail's sandbox)",
)
def test_numpy_scalars_and_arrays_become_plain_json() -> None:
    np: Any = pytest.importorskip("numpy")
    value = {
        "int": np.int64(7),
        "float": np.float32(0.5),
        "bool": np.bool_(True),
        "array": np.arange(6).reshape(2, 3),
        "objects": np.array([1, "a", None], dtype=object),
    }
    assert runner._to_json(value) == {
        "int": 7,
        "float": 0.5,
        "bool": True,
        "array": [[0, 1, 2], [3, 4, 5]],
        "objects": [1, "a", None],
    }


@pytest.mark.skipif(
    numpy_spec is None,
    reason="numpy is not in the service's venv (only in the jail's sandbox)",
)
def test_numpy_values_json_cannot_hold_are_refused_with_their_path() -> None:
    np: Any = pytest.importorskip("numpy")
    nan_inside = report_of(lambda: runner._to_json(np.array([1.0, np.nan])))
    assert (nan_inside["path"], nan_inside["type"]) == ("result[1]", "float")
    set_inside = report_of(lambda: runner._to_json(np.array([{1}], dtype=object)))
    assert (set_inside["path"], set_inside["type"]) == ("result[0]", "set")


class FakeGeneric:
    """numpy.generic's part the runner uses: .item()."""

    __module__ = "numpy"

    def __init__(self, value: Any) -> None:
        self.value = value

    def item(self) -> Any:
        return self.value


class FakeArray:
    """numpy.ndarray's part the runner uses: .tolist()."""

    __module__ = "numpy"

    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def tolist(self) -> list[Any]:
        return self.rows


@pytest.fixture
def fake_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in numpy in sys.modules, where the runner looks for it."""
    module = types.ModuleType("numpy")
    module.generic = FakeGeneric  # type: ignore[attr-defined]
    module.ndarray = FakeArray  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "numpy", module)


@pytest.mark.usefixtures("fake_numpy")
def test_numpy_like_scalars_and_arrays_are_converted_through_item_and_tolist() -> None:
    value = {"scalar": FakeGeneric(7), "array": FakeArray([[1, 2], [FakeGeneric(3.5)]])}
    assert runner._to_json(value) == {"scalar": 7, "array": [[1, 2], [3.5]]}


@pytest.mark.usefixtures("fake_numpy")
@pytest.mark.parametrize(
    ("value", "path", "type_name"),
    [
        (FakeArray([1.0, float("nan")]), "result[1]", "float"),
        (FakeArray([{1}]), "result[0]", "set"),
        (FakeGeneric(b"raw"), "result", "bytes"),
    ],
    ids=["NaN in an array", "object array holding a set", "scalar holding bytes"],
)
def test_numpy_like_values_json_cannot_hold_are_refused_with_their_path(
    value: Any, path: str, type_name: str
) -> None:
    payload = report_of(lambda: runner._to_json(value))
    assert (payload["kind"], payload["path"], payload["type"]) == (
        "invalid_result",
        path,
        type_name,
    )


@pytest.mark.usefixtures("fake_numpy")
def test_a_numpy_like_scalar_whose_item_is_itself_is_refused() -> None:
    scalar = FakeGeneric(None)
    scalar.value = scalar
    assert report_of(lambda: runner._to_json(scalar)) == invalid(
        f"result is of type numpy.FakeGeneric, {NOT_SERIALIZABLE} {GENERIC}",
        path="result",
        type="numpy.FakeGeneric",
    )


# --- _dump and _encode ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -7,
        MAX_INT - 1,
        1.5,
        -0.0,
        1e16,
        1e-7,
        "",
        'quote" backslash\\ newline\n tab\t nul\x00',
        "h\u00e9 \u2603 \U0001d11e",
        "\ud800 lone \udfff",
        [],
        {},
        {"a": [1, {"b": None}], "c": "d"},
    ],
)
def test_dump_writes_what_json_dumps_writes(value: Any) -> None:
    assert runner._dump(value) == json.dumps(value)


def test_dump_writes_ascii_in_which_lone_surrogates_survive() -> None:
    text = runner._dump({"k": "\u00e9\ud800"})
    assert text == '{"k": "\\u00e9\\ud800"}'
    assert json.loads(text.encode("ascii")) == {"k": "\u00e9\ud800"}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain words ~!",
        'a"b',
        "back\\slash",
        "tab\there",
        "\x7f",
        "\u00e9",
        "\U0001f600",
        "\ud800",
    ],
)
def test_json_strings_are_what_the_c_encoder_writes(text: str) -> None:
    import _json

    assert runner._json_string(text) == _json.encode_basestring_ascii(text)


def test_the_python_escapes_are_the_c_encoder_s() -> None:
    import _json

    every_kind = "".join(chr(code) for code in range(0x300)) + "\u2603\ud800\udfff\U0001f600"
    assert runner._escaped_in_python(every_kind) == _json.encode_basestring_ascii(every_kind)


def test_strings_are_still_encoded_when_json_cannot_be_loaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "_json", None)  # importing it raises ImportError
    monkeypatch.setattr(runner, "STRING_ENCODER", [])
    assert runner._json_string("tab\t\u00e9") == '"tab\\t\\u00e9"'
    (encoder,) = runner.STRING_ENCODER
    assert encoder is runner._escaped_in_python


def test_the_c_encoder_comes_from_the_stdlib_not_a_json_py_beside_the_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "_json.py").write_text("raise SystemExit('the upload was imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # as the runner puts /data first
    monkeypatch.delitem(sys.modules, "_json")
    monkeypatch.setattr(runner, "STRING_ENCODER", [])
    assert runner._json_string("needs\nescaping") == '"needs\\nescaping"'
    assert sys.modules["_json"].__file__ != str(tmp_path / "_json.py")


def test_a_hello_world_loads_neither_json_nor_math_in_the_runner() -> None:
    # Each is a shared library in most builds (~0.3 ms of a jail's start to load).
    run = run_runner(
        b"import sys\n"
        b"def main():\n"
        b"    return sorted(m for m in ('_json', 'json', 'math') if m in sys.modules)\n"
    )
    assert run.report is not None
    assert run.report["result"] == []


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (float("nan"), ValueError, "NaN and Infinity are not JSON"),
        ([float("inf")], ValueError, "NaN and Infinity are not JSON"),
        ({1}, TypeError, "set is not JSON"),
        (b"x", TypeError, "bytes is not JSON"),
    ],
)
def test_dump_refuses_what_is_not_json(value: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=f"^{message}$"):
        runner._dump(value)


def test_encode_gives_the_report_as_ascii_json_within_the_limit() -> None:
    report = {"status": "ok", "result": [1, "\u00e9", "\ud800"]}
    expected = b'{"status": "ok", "result": [1, "\\u00e9", "\\ud800"]}'
    assert runner._encode(report, len(expected)) == expected
    assert json.loads(expected) == report


def test_a_success_over_the_limit_becomes_result_too_large_with_its_size() -> None:
    report = {"status": "ok", "result": "x" * 2000}
    size = len(runner._dump(report["result"]))
    assert json.loads(runner._encode(report, size - 1)) == {
        "status": "error",
        "kind": "result_too_large",
        "error": f"main() returned {size} bytes of JSON; the limit is {size - 1} bytes.",
        "size_bytes": size,
        "limit_bytes": size - 1,
    }


def test_an_error_report_over_the_limit_keeps_only_status_kind_and_error() -> None:
    report = {
        "status": "error",
        "kind": "exception",
        "error": "ValueError in main(): boom",
        "traceback_text": "x" * 5000,
        "usage": {"cpu_time_ms": 1.0, "peak_memory_bytes": 1},
    }
    assert json.loads(runner._encode(report, 1024)) == {
        "status": "error",
        "kind": "exception",
        "error": "ValueError in main(): boom",
    }


def test_a_too_large_answer_that_is_itself_over_a_tiny_limit_is_trimmed_not_looped() -> None:
    encoded = json.loads(runner._encode({"status": "ok", "result": "x" * 100}, 40))
    assert sorted(encoded) == ["error", "kind", "status"]
    assert encoded["kind"] == "result_too_large"


def test_a_result_whose_json_is_exactly_the_limit_is_sent() -> None:
    result = "x" * 1022
    assert len(json.dumps(result)) == 1024
    start = resource.getrusage(resource.RUSAGE_SELF)
    report = json.loads(runner._final_report({"status": "ok", "result": result}, start, 1024))
    assert (report["status"], report.get("result")) == ("ok", result)


def test_result_too_large_counts_the_size_of_the_result_s_json() -> None:
    start = resource.getrusage(resource.RUSAGE_SELF)
    report = json.loads(runner._final_report({"status": "ok", "result": "x" * 2000}, start, 1024))
    assert (report["kind"], report["size_bytes"]) == ("result_too_large", 2002)


# --- _final_report and _send_report --------------------------------------------------


def test_the_final_report_adds_usage_since_the_ready_point() -> None:
    start = resource.getrusage(resource.RUSAGE_SELF)
    report = json.loads(runner._final_report({"status": "ok", "result": [1]}, start, 1 << 20))
    assert (report["status"], report["result"]) == ("ok", [1])
    assert sorted(report["usage"]) == ["cpu_time_ms", "peak_memory_bytes"]
    assert report["usage"]["cpu_time_ms"] >= 0
    assert report["usage"]["peak_memory_bytes"] >= 1024 * start.ru_maxrss


@pytest.mark.parametrize(
    ("result", "error_type"), [({1, 2}, "TypeError"), (float("nan"), "ValueError")]
)
def test_a_result_that_cannot_be_encoded_becomes_invalid_result(
    result: Any, error_type: str
) -> None:
    start = resource.getrusage(resource.RUSAGE_SELF)
    report = json.loads(runner._final_report({"status": "ok", "result": result}, start, 1 << 20))
    usage = report.pop("usage")
    assert report == invalid(
        f"The result cannot be encoded as JSON: {error_type}.", path="result", type=error_type
    )
    assert sorted(usage) == ["cpu_time_ms", "peak_memory_bytes"]


def read_all(fd: int) -> bytes:
    data = b""
    while chunk := os.read(fd, 1 << 16):
        data += chunk
    return data


def test_send_report_writes_one_report_line_on_the_result_fd() -> None:
    read_end, write_end = os.pipe()
    start = resource.getrusage(resource.RUSAGE_SELF)
    try:
        runner._send_report(write_end, {"status": "ok", "result": "\u00e9"}, start, 1 << 20)
        os.close(write_end)
        data = read_all(read_end)
    finally:
        os.close(read_end)
    assert data.count(b"\n") == 1
    assert data.endswith(b"\n")
    assert json.loads(data)["result"] == "\u00e9"


def test_send_report_to_a_result_fd_nobody_reads_is_not_an_error() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    start = resource.getrusage(resource.RUSAGE_SELF)
    try:
        runner._send_report(write_end, {"status": "ok", "result": 1}, start, 1 << 20)
    finally:
        os.close(write_end)


def test_a_script_that_broke_the_encoder_still_gets_the_last_resort_report(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(value: Any) -> str:
        raise RuntimeError("the script replaced _dump")

    monkeypatch.setattr(runner, "_dump", broken)
    read_end, write_end = os.pipe()
    start = resource.getrusage(resource.RUSAGE_SELF)
    try:
        runner._send_report(write_end, {"status": "ok", "result": 1}, start, 1 << 20)
        os.close(write_end)
        data = read_all(read_end)
    finally:
        os.close(read_end)
    assert data == runner.LAST_RESORT_REPORT + b"\n"


# --- _exception_report -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "shown", "exit_code"),
    [
        (None, "0", 0),
        (0, "0", 0),
        (3, "3", 3),
        (True, "1", 1),
        (-1, "-1", -1),
        (2**31 - 1, "2147483647", 2**31 - 1),
        (-(2**31), "-2147483648", -(2**31)),
        (2**31, "an integer out of range", 1),
        (2**40, "an integer out of range", 1),
        (-(2**31) - 1, "an integer out of range", 1),
        ("msg", "'msg'", 1),
        ("x" * 300, "'" + "x" * 200 + "'", 1),
    ],
)
def test_system_exit_is_exited_with_its_code(code: object, shown: str, exit_code: int) -> None:
    payload = runner._exception_report(SystemExit(code), "in main()").payload
    assert payload == {
        "status": "error",
        "kind": "exited",
        "error": f"The script called sys.exit({shown}) in main() "
        "instead of returning from main().",
        "exit_code": exit_code,
    }


def test_memory_error_is_memory_limit() -> None:
    assert runner._exception_report(MemoryError(), "in main()").payload == {
        "status": "error",
        "kind": "memory_limit",
        "error": "The script ran out of memory in main() (MemoryError).",
        "exception": {"type": "MemoryError", "message": ""},
        "traceback": [],
    }


def test_oserror_efbig_is_file_size_limit() -> None:
    exc = OSError(errno.EFBIG, "File too large")
    assert runner._exception_report(exc, "in main()").payload == {
        "status": "error",
        "kind": "file_size_limit",
        "error": "The script wrote a file larger than the file size limit in main().",
        "exception": {"type": "OSError", "message": "[Errno 27] File too large"},
        "traceback": [],
    }


@pytest.mark.parametrize(
    ("exc", "error", "message", "text"),
    [
        (
            ValueError("boom"),
            "ValueError in main(): boom",
            "boom",
            "ValueError: boom\n",
        ),
        (ValueError(), "ValueError in main().", "", "ValueError\n"),
        (
            OSError(errno.ENOSPC, "No space left on device"),
            "OSError in main(): [Errno 28] No space left on device",
            "[Errno 28] No space left on device",
            "OSError: [Errno 28] No space left on device\n",
        ),
    ],
    ids=["with a message", "without a message", "another OSError"],
)
def test_other_exceptions_are_exception_with_type_message_and_text(
    exc: BaseException, error: str, message: str, text: str
) -> None:
    assert runner._exception_report(exc, "in main()").payload == {
        "status": "error",
        "kind": "exception",
        "error": error,
        "exception": {"type": type(exc).__name__, "message": message},
        "traceback": [],
        "traceback_text": text,
    }


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message for you")


def test_an_exception_whose_str_raises_is_reported_with_a_note() -> None:
    payload = runner._exception_report(Unprintable(), "in main()").payload
    assert payload["error"] == f"Unprintable in main(): {STR_FAILED}"
    assert payload["exception"] == {"type": "Unprintable", "message": STR_FAILED}
    assert payload["traceback_text"].startswith(f"{__name__}.Unprintable: ")


def test_a_long_exception_message_is_cut_to_2000_characters() -> None:
    payload = runner._exception_report(ValueError("x" * 5000), "in main()").payload
    assert payload["exception"]["message"] == "x" * 2000
    assert payload["error"] == "ValueError in main(): " + "x" * 2000


def test_a_traceback_shows_the_script_s_frames_and_drops_the_runner_s(
    jailed: types.ModuleType,
) -> None:
    with pytest.raises(jailed.Report) as caught:
        jailed._run("def main():\n    raise ValueError('boom')\n")
    assert caught.value.payload == {
        "status": "error",
        "kind": "exception",
        "error": "ValueError in main(): boom",
        "exception": {"type": "ValueError", "message": "boom"},
        "traceback": [FRAME_BOOM],
        "traceback_text": (
            "Traceback (most recent call last):\n"
            '  File "script", line 2, in main\n'
            "    raise ValueError('boom')\n"
            "ValueError: boom\n"
        ),
    }


def test_a_traceback_keeps_library_frames(jailed: types.ModuleType) -> None:
    with pytest.raises(jailed.Report) as caught:
        jailed._run("import json\ndef main():\n    return json.loads('{')\n")
    frames = caught.value.payload["traceback"]
    assert frames[0] == {
        "file": "script",
        "line": 3,
        "function": "main",
        "code": "return json.loads('{')",
    }
    assert len(frames) >= 2
    assert {Path(frame["file"]).parent.name for frame in frames[1:]} == {"json"}
    assert "<string>" not in caught.value.payload["traceback_text"]


def test_a_module_level_traceback_starts_at_the_script(jailed: types.ModuleType) -> None:
    with pytest.raises(jailed.Report) as caught:
        jailed._run("x = 1\nraise KeyError('at load')\n")
    payload = caught.value.payload
    assert payload["error"] == "KeyError while loading the script: 'at load'"
    assert payload["traceback"] == [
        {"file": "script", "line": 2, "function": "<module>", "code": "raise KeyError('at load')"}
    ]


def test_a_traceback_keeps_the_last_50_frames(jailed: types.ModuleType) -> None:
    source = (
        "def down(n):\n"
        "    if n == 0:\n"
        "        raise ValueError('deep')\n"
        "    return down(n - 1)\n"
        "def main():\n"
        "    return down(60)\n"
    )
    with pytest.raises(jailed.Report) as caught:
        jailed._run(source)
    frames = caught.value.payload["traceback"]
    assert len(frames) == 50
    assert frames[-1] == {
        "file": "script",
        "line": 3,
        "function": "down",
        "code": "raise ValueError('deep')",
    }


# --- _strip_runner_frames ---------------------------------------------------------------


def test_strip_runner_frames_drops_string_frames_with_their_code_line() -> None:
    text = (
        "Traceback (most recent call last):\n"
        '  File "<string>", line 400, in _run\n'
        "    value = main()\n"
        '  File "<string>", line 500, in _load_main\n'
        '  File "<script>", line 2, in main\n'
        "    raise ValueError('boom')\n"
        "ValueError: boom\n"
    )
    assert runner._strip_runner_frames(text) == (
        "Traceback (most recent call last):\n"
        '  File "script", line 2, in main\n'
        "    raise ValueError('boom')\n"
        "ValueError: boom\n"
    )


def test_strip_runner_frames_keeps_a_line_after_a_string_frame_that_is_not_code() -> None:
    text = '  File "<string>", line 1, in <module>\nValueError: boom\n'
    assert runner._strip_runner_frames(text) == "ValueError: boom\n"


def test_strip_runner_frames_keeps_the_last_20000_characters() -> None:
    text = "a" * 15_000 + "b" * 15_000
    assert runner._strip_runner_frames(text) == "a" * 5_000 + "b" * 15_000


# --- _load_main and _run -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "result"),
    [
        pytest.param("def main():\n    return 1\n", 1, id="plain main"),
        pytest.param("def main(x=1, *, y=2):\n    return x + y\n", 3, id="main with defaults"),
        pytest.param(
            "def main(*args, **kwargs):\n    return len(args) + len(kwargs)\n",
            0,
            id="main with *args and **kwargs",
        ),
        pytest.param(
            "class Main:\n    def __call__(self):\n        return 5\nmain = Main()\n",
            5,
            id="callable class instance",
        ),
        pytest.param(
            "import functools\ndef add(a, b):\n    return a + b\n"
            "main = functools.partial(add, 1, 2)\n",
            3,
            id="partial with every argument",
        ),
        pytest.param("main = lambda: 'lambda'\n", "lambda", id="lambda"),
        pytest.param(
            "if __name__ == '__main__':\n    raise SystemExit('the guard ran')\n"
            "def main():\n    return __name__\n",
            "__script__",
            id="a main guard does not run",
        ),
    ],
)
def test_load_main_returns_a_main_callable_without_arguments(source: str, result: Any) -> None:
    assert runner._load_main(source)() == result


SIGNATURE = (
    'needs arguments, but the request has no "input"; define `def main():`, '
    'or send "input" to have it passed to main.'
)
ASYNC = (
    "main() is `async def`; define it with `def` and call asyncio.run(...) inside it if you "
    "need a coroutine."
)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param(
            "x = = 1\n",
            {
                "kind": "syntax_error",
                "error": "SyntaxError on line 1: invalid syntax.",
                "line": 1,
                "column": 5,
                "code": "x = = 1",
            },
            id="syntax error",
        ),
        pytest.param(
            "def main():\n    return (\n",
            {
                "kind": "syntax_error",
                "error": "SyntaxError on line 2: '(' was never closed.",
                "line": 2,
                "column": 12,
                "code": "    return (",
            },
            id="syntax error on line 2",
        ),
        pytest.param(
            "x = 1\n",
            {"kind": "no_main", "error": "The script does not define a function named main()."},
            id="no main",
        ),
        pytest.param(
            "main = 'text'\n",
            {
                "kind": "main_not_callable",
                "error": "main is a str, not a function; define `def main():`.",
            },
            id="main not callable",
        ),
        pytest.param(
            "async def main():\n    return 1\n",
            {"kind": "main_async", "error": ASYNC},
            id="async def main",
        ),
        pytest.param(
            "async def main():\n    yield 1\n",
            {"kind": "main_async", "error": ASYNC},
            id="async generator main",
        ),
        pytest.param(
            "import functools\nasync def run():\n    return 1\nmain = functools.partial(run)\n",
            {"kind": "main_async", "error": ASYNC},
            id="partial of an async function",
        ),
        pytest.param(
            "def main(x):\n    return x\n",
            {"kind": "main_signature", "error": f"main(x) {SIGNATURE}"},
            id="positional argument",
        ),
        pytest.param(
            "def main(*, x):\n    return x\n",
            {"kind": "main_signature", "error": f"main(*, x) {SIGNATURE}"},
            id="keyword-only argument",
        ),
        pytest.param(
            "def main(x, y=1):\n    return x\n",
            {"kind": "main_signature", "error": f"main(x, y=1) {SIGNATURE}"},
            id="one argument of two has a default",
        ),
        pytest.param(
            "class Main:\n    def __call__(self, x):\n        return x\nmain = Main()\n",
            {"kind": "main_signature", "error": f"main(x) {SIGNATURE}"},
            id="callable instance needing an argument",
        ),
        pytest.param(
            "import sys\nsys.exit(4)\n",
            {
                "kind": "exited",
                "error": "The script called sys.exit(4) while loading the script instead of "
                "returning from main().",
                "exit_code": 4,
            },
            id="sys.exit at module level",
        ),
    ],
)
def test_load_main_refuses_scripts_without_a_usable_main(
    source: str, expected: dict[str, Any]
) -> None:
    assert report_of(lambda: runner._load_main(source)) == {"status": "error", **expected}


def test_a_null_byte_in_the_source_is_a_syntax_error() -> None:
    payload = report_of(lambda: runner._load_main("def main():\n    return 1\x00\n"))
    assert payload["kind"] == "syntax_error"
    assert "cannot contain null bytes" in payload["error"]


def test_a_lone_surrogate_in_the_source_is_a_syntax_error() -> None:
    payload = report_of(lambda: runner._load_main("def main():\n    return '\ud800'\n"))
    assert payload["kind"] == "syntax_error"
    assert payload["error"].startswith("The script cannot be compiled: ")
    assert "surrogates not allowed" in payload["error"]


def test_an_exception_at_module_level_is_reported_while_loading() -> None:
    payload = report_of(lambda: runner._load_main("raise ValueError('at load')\n"))
    assert (payload["kind"], payload["error"], payload["exception"]) == (
        "exception",
        "ValueError while loading the script: at load",
        {"type": "ValueError", "message": "at load"},
    )
    assert payload["traceback"][-1] == {
        "file": "script",
        "line": 1,
        "function": "<module>",
        "code": "raise ValueError('at load')",
    }


def test_run_returns_the_result_as_plain_json() -> None:
    assert runner._run("def main():\n    return {'a': (1, 2)}\n") == {
        "status": "ok",
        "result": {"a": [1, 2]},
    }


def test_run_refuses_a_generator_returned_by_main() -> None:
    assert report_of(lambda: runner._run("def main():\n    yield 1\n")) == invalid(
        "main() returned a generator (it contains `yield`); return a list instead.",
        path="result",
        type="generator",
    )


def test_run_reports_an_exception_in_main() -> None:
    payload = report_of(lambda: runner._run("def main():\n    return 1 / 0\n"))
    assert (payload["kind"], payload["error"]) == (
        "exception",
        "ZeroDivisionError in main(): division by zero",
    )


def test_a_result_that_breaks_even_isinstance_is_reported_not_raised() -> None:
    source = (
        "class Sly:\n"
        "    @property\n"
        "    def __class__(self):\n"
        "        raise RuntimeError('no class')\n"
        "def main():\n"
        "    return Sly()\n"
    )
    payload = runner._run_reported(source)
    assert (payload["kind"], payload["error"]) == (
        "exception",
        "RuntimeError while checking the result: no class",
    )


# --- the runner as a process, over real pipes ---------------------------------------------


@dataclass
class RunnerRun:
    """What one runner process did: its ready figure, report, output and exit status."""

    ready_ms: float | None
    report: dict[str, Any] | None
    stdout: bytes
    stderr: bytes
    returncode: int


class Lines:
    """Lines read from a pipe, each within a deadline."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""

    def next(self, timeout: float = 10.0) -> bytes | None:
        """The next line without its end, or None at EOF."""
        deadline = time.monotonic() + timeout
        while (line := protocol.first_line(self.buffer)) is None:
            readable, _, _ = select.select([self.fd], [], [], deadline - time.monotonic())
            if not readable:
                raise TimeoutError("the runner did not write a line in time")
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return None
            self.buffer += chunk
        self.buffer = self.buffer[len(line) + len(protocol.LINE_END) :]
        return line


def run_runner(source: bytes | None) -> RunnerRun:
    """Start the runner as the jail does (``python -I -S -B -u -c``), send ``source``
    (None: close the control pipe without a request) and collect what it did."""
    control_r, control_w = os.pipe()
    result_r, result_w = os.pipe()
    argv = [
        sys.executable,
        *PYTHON_FLAGS,
        "-c",
        RUNNER_SOURCE,
        "--control-fd",
        str(control_r),
        "--result-fd",
        str(result_w),
        "--preimport",
        "",
    ]
    proc = subprocess.Popen(
        argv,
        pass_fds=(control_r, result_w),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    os.close(control_r)
    os.close(result_w)
    try:
        lines = Lines(result_r)
        ready = lines.next()
        report = None
        if source is not None:
            os.write(control_w, protocol.request_bytes(5, 1 << 20, source))
            report = lines.next()
        os.close(control_w)
        control_w = -1
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        if control_w >= 0:
            os.close(control_w)
        os.close(result_r)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return RunnerRun(
        ready_ms=protocol.parse_ready(ready) if ready is not None else None,
        report=json.loads(report) if report is not None else None,
        stdout=stdout,
        stderr=stderr,
        returncode=proc.returncode,
    )


def test_the_runner_process_runs_a_script_and_reports_over_its_pipes() -> None:
    run = run_runner(b"def main():\n    print('hi')\n    return [1, (2, 3)]\n")
    assert run.ready_ms is not None
    assert run.ready_ms >= 0
    assert run.report is not None
    usage = run.report.pop("usage")
    assert run.report == {"status": "ok", "result": [1, [2, 3]]}
    assert sorted(usage) == ["cpu_time_ms", "peak_memory_bytes"]
    assert (run.stdout, run.stderr, run.returncode) == (b"hi\n", b"", 0)


def test_the_runner_process_shows_no_frame_of_its_own_in_a_traceback() -> None:
    run = run_runner(b"def main():\n    raise ValueError('boom')\n")
    assert run.report is not None
    assert run.report["traceback"] == [FRAME_BOOM]
    assert "<string>" not in run.report["traceback_text"]
    assert run.returncode == 0


@pytest.mark.parametrize(
    ("source", "result"),
    [
        (b"import sys\ndef main():\n    return sys.argv\n", ["script"]),
        (b"def main():\n    return __name__\n", "__script__"),
        ("def main():\n    return 'h\u00e9 \\ud800'\n".encode(), "h\u00e9 \ud800"),
    ],
    ids=["argv", "module name", "non-ASCII and a lone surrogate"],
)
def test_the_runner_process_gives_the_script_its_own_world(source: bytes, result: Any) -> None:
    run = run_runner(source)
    assert run.report is not None
    assert (run.report["status"], run.report["result"]) == ("ok", result)


def test_the_runner_process_provides_exit_without_the_site_module() -> None:
    run = run_runner(b"def main():\n    exit(3)\n")
    assert run.report is not None
    assert (run.report["kind"], run.report["exit_code"]) == ("exited", 3)


def test_the_runner_process_ends_with_an_error_when_no_request_comes() -> None:
    run = run_runner(None)
    assert run.ready_ms is not None
    assert run.returncode == 1
    assert b"EOFError: the service sent no request" in run.stderr
