"""The report frame with returned files: ``report_frame``, ``report_length`` and
``split_report`` (the service's copy and the runner's), round trips, frames still
arriving, frames that are not the runner's; and what interpret makes of each."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pyexec import protocol, runner
from pyexec.answers import Outcome
from pyexec.files import FileCaps
from pyexec.outcome import interpret
from pyexec.record import RunRecord
from pyexec.schemas import load_schema, validator
from pyexec.settings import Limits

PAYLOAD = b'{"status": "ok", "result": 1, "files": []}'
LIMITS = Limits(timeout_seconds=5.0, cpu_seconds=2, memory_mb=256)
CAPS = FileCaps(max_files=4, max_file_bytes=100, max_total_bytes=200)
SCHEMAS = {True: validator(load_schema("success")), False: validator(load_schema("error"))}
PRIVATE_CHANNEL = (
    "The script wrote into the runner's private result channel, so its result is lost."
)

FILES = [
    pytest.param(b"", id="no bytes"),
    pytest.param(b"abc", id="three bytes"),
    pytest.param(b"\n\n1\n", id="line ends and a digit"),
    pytest.param(bytes(range(256)), id="every byte"),
    pytest.param(b'{"status": "ok"}\n', id="a report lookalike"),
    pytest.param(b"x" * (1 << 20), id="1 MiB"),
]


@pytest.mark.parametrize("make", [protocol.report_frame, runner.report_frame])
@pytest.mark.parametrize("files", FILES)
def test_a_frame_with_files_round_trips(make: Any, files: bytes) -> None:
    frame = make(PAYLOAD, files)
    assert frame == PAYLOAD + b"\n" + str(len(files)).encode() + b"\n" + files
    assert protocol.report_length(frame, True) == len(frame)
    assert protocol.split_report(frame, True) == (PAYLOAD, files)
    assert runner.split_report(frame, True) == (PAYLOAD, files)


@pytest.mark.parametrize("payload", [PAYLOAD, b"", b"[1, 2]", b'"\\ud800"'])
def test_a_frame_without_files_round_trips(payload: bytes) -> None:
    frame = protocol.report_frame(payload)
    assert frame == payload + b"\n"
    assert protocol.report_length(frame, False) == len(frame)
    assert protocol.split_report(frame, False) == (payload, b"")


def test_no_files_asked_is_not_the_same_frame_as_no_files_found() -> None:
    assert protocol.report_frame(PAYLOAD) == PAYLOAD + b"\n"
    assert protocol.report_frame(PAYLOAD, b"") == PAYLOAD + b"\n0\n"


def test_split_report_accepts_a_bytearray_as_it_arrives() -> None:
    frame = bytearray(protocol.report_frame(PAYLOAD, b"xy"))
    assert protocol.report_length(frame, True) == len(frame)


@pytest.mark.parametrize("files", [b"", b"abc", bytes(range(256))], ids=["none", "3", "256"])
def test_every_prefix_of_a_frame_is_incomplete(files: bytes) -> None:
    frame = protocol.report_frame(PAYLOAD, files)
    payload_end = len(PAYLOAD) + 1
    length_end = payload_end + len(str(len(files))) + 1
    for cut in range(len(frame)):
        prefix = frame[:cut]
        length = protocol.report_length(prefix, True)
        # The length is known once the length line has arrived, and never before.
        assert length == (len(frame) if cut >= length_end else None), cut
        assert protocol.split_report(prefix, True) is None, cut
    for cut in range(payload_end):
        assert protocol.report_length(frame[:cut], False) is None


def test_a_frame_without_its_length_line_is_incomplete_until_24_bytes_are_there() -> None:
    assert protocol.report_length(PAYLOAD + b"\n", True) is None
    assert protocol.report_length(PAYLOAD + b"\n" + b"1" * 23, True) is None
    assert protocol.split_report(PAYLOAD + b"\n", True) is None


@pytest.mark.parametrize(
    "after",
    [
        pytest.param(b"abc\nxyz", id="letters"),
        pytest.param(b"-1\n", id="negative"),
        pytest.param(b"+3\nabc", id="a plus sign"),
        pytest.param(b" 3\nabc", id="a leading space"),
        pytest.param(b"3 \nabc", id="a trailing space"),
        pytest.param(b"3.0\nabc", id="a decimal point"),
        pytest.param(b"0x3\nabc", id="hexadecimal"),
        pytest.param(b"\nabc", id="an empty line"),
        pytest.param("\uff13\n".encode() + b"abc", id="a full-width digit"),
        pytest.param("\u0663\n".encode() + b"abc", id="an Arabic-Indic digit"),
        pytest.param(b"1" * 24, id="24 digits without a line end"),
        pytest.param(b"x" * 30, id="no line end at all"),
    ],
)
def test_a_length_line_that_is_not_a_number_makes_a_complete_frame_not_the_runner_s(
    after: bytes,
) -> None:
    received = PAYLOAD + b"\n" + after
    assert protocol.report_length(received, True) == len(received)
    assert protocol.split_report(received, True) is None


@pytest.mark.parametrize(
    ("received", "with_files"),
    [
        pytest.param(protocol.report_frame(PAYLOAD, b"abc") + b"d", True, id="one byte more"),
        pytest.param(protocol.report_frame(PAYLOAD, b"") + b"\n", True, id="a line end more"),
        pytest.param(
            protocol.report_frame(PAYLOAD, b"ab") * 2, True, id="a second frame after the first"
        ),
        pytest.param(protocol.report_frame(PAYLOAD) + b"x", False, id="without files"),
        pytest.param(protocol.report_frame(PAYLOAD, b"ab"), False, id="files not asked for"),
    ],
)
def test_bytes_after_a_whole_frame_make_it_not_the_runner_s(
    received: bytes, with_files: bool
) -> None:
    length = protocol.report_length(received, with_files)
    assert length is not None
    assert length < len(received)
    assert protocol.split_report(received, with_files) is None


def test_a_length_larger_than_what_came_is_never_complete() -> None:
    received = PAYLOAD + b"\n" + b"9" * 23 + b"\n" + b"abc"
    assert protocol.report_length(received, True) == len(PAYLOAD) + 1 + 24 + int(b"9" * 23)
    assert protocol.split_report(received, True) is None


# --- what interpret makes of a frame -------------------------------------------------------


def answer(report: bytes, wants_files: bool = True, **fields: Any) -> Outcome:
    """interpret() of a record with ``report``, its answer checked against its schema."""
    record = RunRecord(report=report, limits=LIMITS, wants_files=wants_files, **fields)
    outcome = interpret(record, 1 << 20, CAPS)
    SCHEMAS[outcome.status == 200].validate(outcome.body)
    return outcome


def frame_of(report: dict[str, Any], files: bytes | None) -> bytes:
    return protocol.report_frame(json.dumps(report).encode(), files)


LISTING = [
    {"path": "a.txt", "size": 2},
    {"path": "big", "size": 500, "omitted": "file_too_large"},
    {"path": "b.bin", "size": 1},
]


def test_a_whole_frame_gives_the_files_in_the_answer() -> None:
    listing = sorted(LISTING, key=lambda item: str(item["path"]))
    outcome = answer(frame_of({"status": "ok", "result": 1, "files": listing}, b"hi\xff"))
    assert outcome.status == 200
    assert outcome.body["files_collected"] is True
    assert outcome.body["files"] == [
        {
            "path": "a.txt",
            "size": 2,
            "mime_type": "text/plain",
            "encoding": "utf-8",
            "content": "hi",
        },
        {
            "path": "b.bin",
            "size": 1,
            "mime_type": "application/octet-stream",
            "encoding": "base64",
            "content": "/w==",
        },
        {"path": "big", "size": 500, "omitted": "file_too_large"},
    ]


def test_an_error_report_carries_its_files_too() -> None:
    report = {
        "status": "error",
        "kind": "exception",
        "error": "ValueError in main(): boom",
        "files": [{"path": "x", "size": 1}],
    }
    outcome = answer(frame_of(report, b"1"))
    assert (outcome.status, outcome.body["kind"]) == (400, "exception")
    assert outcome.body["files"][0]["content"] == "1"
    assert outcome.body["files_collected"] is True


@pytest.mark.parametrize(
    "received",
    [
        pytest.param(
            frame_of({"status": "ok", "result": 1, "files": []}, b"") + b"x", id="extra bytes"
        ),
        pytest.param(
            frame_of({"status": "ok", "result": 1, "files": []}, None), id="no length line"
        ),
        pytest.param(
            json.dumps({"status": "ok", "result": 1, "files": []}).encode() + b"\nzero\n",
            id="a length line that is not a number",
        ),
        pytest.param(
            frame_of({"status": "ok", "result": 1, "files": [{"path": "a", "size": 2}]}, b"abc"),
            id="sizes that do not add up",
        ),
        pytest.param(frame_of({"status": "ok", "result": 1}, b""), id="no listing"),
        pytest.param(
            frame_of({"status": "ok", "result": 1, "files": [{"path": "../a", "size": 0}]}, b""),
            id="a bad path",
        ),
    ],
)
def test_a_frame_that_is_not_the_runner_s_loses_result_and_files(received: bytes) -> None:
    outcome = answer(received)
    assert (outcome.status, outcome.body["kind"]) == (400, "crashed")
    assert outcome.body["error"] == PRIVATE_CHANNEL
    assert (outcome.body["files"], outcome.body["files_collected"]) == ([], False)


def test_files_in_a_report_when_none_were_asked_for_are_forged() -> None:
    outcome = answer(frame_of({"status": "ok", "result": 1, "files": []}, None), False)
    assert (outcome.status, outcome.body["kind"]) == (400, "crashed")
    assert "files" not in outcome.body


def test_a_killed_run_s_files_are_not_collected_even_with_a_whole_frame() -> None:
    frame = frame_of({"status": "ok", "result": 1, "files": [{"path": "a", "size": 1}]}, b"1")
    outcome = answer(frame, timed_out=True)
    assert (outcome.status, outcome.body["kind"]) == (400, "timeout")
    assert (outcome.body["files"], outcome.body["files_collected"]) == ([], False)


def test_a_forged_unhashable_omitted_reason_is_answered_not_raised() -> None:
    report = {"status": "ok", "result": 1, "files": [{"path": "a", "size": 0, "omitted": []}]}
    outcome = answer(frame_of(report, b""))
    assert outcome.body["kind"] == "crashed"
