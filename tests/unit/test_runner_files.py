"""pyexec.runner's side of data in and out, without a jail: the request's files written
into the working directory, ``output_files`` matched and collected, main() called with
``input``; then a whole request carried from the service's Payload through a real pipe,
the runner and its report frame, to the client's answer (and once through the runner
started as its own process, as the jail starts it).

Every test runs in its own empty working directory (``workdir``), as the jail's /data.
"""

from __future__ import annotations

import json
import linecache
import os
import posix
import resource
import select
import stat
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyexec import protocol, runner
from pyexec.answers import Outcome
from pyexec.command import PYTHON_FLAGS
from pyexec.files import MAX_DEPTH, MAX_LISTED, FileCaps, answer_entries, path_problem
from pyexec.outcome import interpret
from pyexec.payload import output_caps
from pyexec.record import RunRecord
from pyexec.runner_code import RUNNER_SOURCE
from pyexec.schemas import RequestValidator, load_schema, validator
from pyexec.settings import Settings, load_settings

SCHEMAS = {True: validator(load_schema("success")), False: validator(load_schema("error"))}
WIDE = [100, 1 << 20, 1 << 20]  # caps that nothing in these tests reaches
THREAD_TIMEOUT = 10.0


@pytest.fixture(autouse=True)
def _forget_scripts() -> Iterator[None]:
    """_load_main keeps each script's source for tracebacks (in linecache too)."""
    yield
    runner._SCRIPT_SOURCE.clear()
    linecache.cache.pop(runner.SCRIPT_FILENAME, None)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, made the current one for the test."""
    work = tmp_path / "data"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def write(path: str, data: bytes = b"") -> None:
    """A file at ``path`` (relative to the cwd) with ``data``, its directories made."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def tree() -> dict[str, bytes]:
    """Every regular file below the cwd (symlinks not followed) and its bytes."""
    found = {}
    for directory, _, names in os.walk("."):
        for name in names:
            path = os.path.join(directory, name)[2:]
            if stat.S_ISREG(os.lstat(path).st_mode):
                found[path] = Path(path).read_bytes()
    return found


def report_of(call: Any) -> dict[str, Any]:
    """The payload of the Report that ``call`` raises."""
    with pytest.raises(runner.Report) as caught:
        call()
    payload: dict[str, Any] = caught.value.payload
    return payload


def in_thread(target: Any, *args: Any) -> Any:
    """``target(*args)`` in a daemon thread, failing the test if it does not return
    within THREAD_TIMEOUT (a read that blocks must not hang the suite)."""
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["value"] = target(*args)
        except BaseException as exc:  # noqa: BLE001 (raised again in the test's thread)
            outcome["error"] = exc

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(THREAD_TIMEOUT)
    assert not thread.is_alive(), f"{target.__name__} blocked for {THREAD_TIMEOUT} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# --- _write_files ----------------------------------------------------------------------------


def test_the_request_s_files_are_written_with_their_exact_bytes(workdir: Path) -> None:
    files: list[list[Any]] = [["a.txt", 3], ["d/e/f.bin", 256], ["empty", 0], ["d/g", 2]]
    data = b"h\xc3\xa9" + bytes(range(256)) + b"\r\n"
    runner._write_files(files, memoryview(data))
    assert tree() == {
        "a.txt": "h\u00e9".encode(),
        "d/e/f.bin": bytes(range(256)),
        "empty": b"",
        "d/g": b"\r\n",
    }
    assert stat.S_IMODE(os.stat("a.txt").st_mode) == 0o644 & ~current_umask()


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_file_larger_than_a_pipe_write_is_written_whole(workdir: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 7)
    runner._write_files([["big.bin", len(data)]], memoryview(data))
    assert Path("big.bin").read_bytes() == data


def test_no_files_write_nothing(workdir: Path) -> None:
    runner._write_files([], memoryview(b""))
    assert os.listdir(".") == []


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: write("a.txt", b"old"), id="an existing file"),
        pytest.param(lambda: os.symlink("elsewhere.txt", "a.txt"), id="a dangling symlink"),
        pytest.param(lambda: os.symlink("/etc/hostname", "a.txt"), id="a symlink out"),
        pytest.param(lambda: os.mkdir("a.txt"), id="a directory"),
    ],
)
def test_a_path_that_exists_is_not_written_through_and_is_an_exception_report(
    workdir: Path, make: Any
) -> None:
    make()
    before = tree()
    payload = report_of(lambda: runner._write_files([["a.txt", 3]], memoryview(b"new")))
    assert payload["kind"] == "exception"
    assert payload["error"].startswith(
        "FileExistsError while writing the request's file 'a.txt': [Errno 17] File exists"
    )
    assert payload["exception"]["type"] == "FileExistsError"
    assert tree() == before
    assert not Path("elsewhere.txt").exists()


def test_run_reported_writes_the_files_before_the_script_loads(workdir: Path) -> None:
    source = (
        "import pathlib\nDATA = pathlib.Path('in/a.txt').read_bytes()\n"
        "def main():\n    return DATA.decode()\n"
    )
    meta = {"files": [["in/a.txt", 5]]}
    report = runner._run_reported(source, meta, memoryview(b"hello"))
    assert report == {"status": "ok", "result": "hello"}


def test_run_reported_does_not_run_the_script_when_a_file_cannot_be_written(
    workdir: Path,
) -> None:
    write("taken", b"")
    source = "open('ran', 'w').close()\ndef main():\n    return 1\n"
    report = runner._run_reported(source, {"files": [["taken", 1]]}, memoryview(b"x"))
    assert report["kind"] == "exception"
    assert "while writing the request's file 'taken'" in report["error"]
    assert not Path("ran").exists()


def test_run_reported_without_data_writes_nothing(workdir: Path) -> None:
    report = runner._run_reported("def main():\n    return 1\n", {"files": [["a", 1]]}, None)
    assert report == {"status": "ok", "result": 1}
    assert os.listdir(".") == []


# --- _glob_match -----------------------------------------------------------------------------


def glob(pattern: str, path: str) -> bool:
    return runner._glob_match(pattern.split("/"), path.split("/"))


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*", "a.txt", True),
        ("*", "d/a.txt", False),
        ("*.txt", "a.txt", True),
        ("*.txt", "a.csv", False),
        ("*.TXT", "a.txt", False),
        ("a.txt", "a.txt", True),
        ("a.txt", "d/a.txt", False),
        ("?.txt", "a.txt", True),
        ("?.txt", "ab.txt", False),
        ("[ab].txt", "b.txt", True),
        ("[ab].txt", "c.txt", False),
        ("[!a].txt", "b.txt", True),
        ("d/*", "d/x", True),
        ("d/*", "d", False),
        ("*/x", "d/x", True),
        ("**", "a.txt", True),
        ("**", "a/b/c/d", True),
        ("**/*.csv", "x.csv", True),
        ("**/*.csv", "a/b/x.csv", True),
        ("**/*.csv", "a/b/x.txt", False),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/x/c", False),
        ("a/**", "a/b/c", True),
        ("a/**", "b/c", False),
        ("**/**", "a/b", True),
        ("*", ".env", False),
        ("?env", ".env", False),
        ("[.]env", ".env", False),
        (".*", ".env", True),
        (".env", ".env", True),
        ("**", ".env", False),
        ("**", "d/.env", False),
        ("**/.env", "d/.env", True),
        ("**/.*", "a/b/.x", True),
        ("*/x", ".git/x", False),
        (".git/*", ".git/x", True),
        ("**/config", ".git/config", False),
        ("**/x", "a/.hidden/x", False),
        (".git/**", ".git/a/b", True),
        ("**/.hidden/*", "a/.hidden/x", True),
        ("*", "a.b.c", True),
        ("*", "\u00e9\u2603", True),
    ],
    ids=lambda value: repr(value) if isinstance(value, str) else None,
)
def test_glob_match(pattern: str, path: str, matches: bool) -> None:
    assert glob(pattern, path) is matches


# --- _matching -------------------------------------------------------------------------------


def test_matching_walks_below_the_working_directory_sorted(workdir: Path) -> None:
    for path in ("b.txt", "a.txt", "d/c.txt", "d/e/f.txt", "d/e/g.csv", "z/.hidden/h.txt"):
        write(path)
    assert runner._matching(["**"]) == ["a.txt", "b.txt", "d/c.txt", "d/e/f.txt", "d/e/g.csv"]
    assert runner._matching(["*.txt"]) == ["a.txt", "b.txt"]
    assert runner._matching(["**/*.txt", "a.*"]) == ["a.txt", "b.txt", "d/c.txt", "d/e/f.txt"]
    assert runner._matching(["**/.*/*"]) == ["z/.hidden/h.txt"]
    assert runner._matching(["nothing"]) == []
    assert runner._matching([]) == []


def test_matching_lists_files_not_directories(workdir: Path) -> None:
    write("d/e/x")
    os.mkdir("empty")
    assert runner._matching(["*", "*/*", "d/e"]) == []


def test_matching_sorts_by_code_point(workdir: Path) -> None:
    names = ["b", "B", "\u00e9", "a b", "a.b", "\U0001d11e", "_", "1"]
    for name in names:
        write(name)
    assert runner._matching(["*"]) == sorted(names)


def test_matching_does_not_descend_a_symlinked_directory(workdir: Path) -> None:
    write("real/x.txt")
    os.symlink("real", "link")
    os.symlink(str(workdir.parent), "up")
    write("../outside.txt")
    assert runner._matching(["**"]) == ["link", "real/x.txt", "up"]


def test_matching_terminates_on_symlink_loops(workdir: Path) -> None:
    os.symlink(".", "self")
    os.symlink("..", "parent")
    os.symlink("b", "a")
    os.symlink("a", "b")
    os.mkdir("d")
    os.symlink("../d", "d/again")
    assert in_thread(runner._matching, ["**"]) == ["a", "b", "d/again", "parent", "self"]


def test_matching_skips_names_that_are_not_utf8(workdir: Path) -> None:
    write("ok.txt")
    os.close(os.open(b"bad\xff.txt", os.O_CREAT | os.O_WRONLY, 0o644))
    os.mkdir(b"dir\xfe")
    os.close(os.open(b"dir\xfe/inside.txt", os.O_CREAT | os.O_WRONLY, 0o644))
    assert runner._matching(["**", "*"]) == ["ok.txt"]


def test_matching_stops_at_16_levels(workdir: Path) -> None:
    fifteen = "/".join(["d"] * 15)
    write(f"{fifteen}/sixteen")
    write(f"{fifteen}/d/seventeen")
    assert runner._matching(["**"]) == [f"{fifteen}/sixteen"]


def test_the_walk_s_bounds_are_the_service_s(workdir: Path) -> None:
    assert runner.MAX_MATCHED == MAX_LISTED
    assert runner.MAX_WALK_DEPTH == MAX_DEPTH


def test_matching_returns_at_most_max_listed_paths_the_first_in_order(workdir: Path) -> None:
    names = [f"{i:05}" for i in range(MAX_LISTED + 2)]
    for name in names:
        write(name)
    assert runner._matching(["*"]) == names[:MAX_LISTED]
    listing, blob = collected(["*"], [1, 1, 1])
    assert len(listing) == MAX_LISTED
    assert listing[:2] == [
        {"path": "00000", "size": 0},
        {"path": "00001", "size": 0, "omitted": "too_many_files"},
    ]
    assert blob == b""


def test_matching_lists_only_paths_the_service_accepts(workdir: Path) -> None:
    write("ok.txt")
    write("back\\slash.txt")
    write("/".join(["d" * 250] * 4) + "/" + "f" * 30)  # 1034 bytes, 5 levels
    matched = runner._matching(["**"])
    assert "ok.txt" in matched
    assert [path for path in matched if path_problem(path) is not None] == []


# --- _collect_files --------------------------------------------------------------------------


def collected(patterns: list[str], caps: list[int]) -> tuple[list[dict[str, Any]], bytes]:
    """_collect_files, which must never block, whose listing the service accepts."""
    listing, blob = in_thread(runner._collect_files, patterns, caps)
    assert answer_entries(listing, blob, FileCaps(*caps)) is not None
    return listing, blob


def test_collected_bytes_are_concatenated_in_listing_order(workdir: Path) -> None:
    write("b.bin", b"\x00\x01")
    write("a.txt", b"alpha")
    write("c/d.txt", b"delta")
    write("c/empty")
    listing, blob = collected(["**"], WIDE)
    assert listing == [
        {"path": "a.txt", "size": 5},
        {"path": "b.bin", "size": 2},
        {"path": "c/d.txt", "size": 5},
        {"path": "c/empty", "size": 0},
    ]
    assert blob == b"alpha\x00\x01delta"


def test_nothing_matched_collects_nothing(workdir: Path) -> None:
    write("a.txt", b"x")
    assert collected(["*.csv"], WIDE) == ([], b"")


def test_a_symlink_is_listed_as_omitted_never_read(workdir: Path) -> None:
    os.symlink("/etc/hostname", "host")
    os.symlink("missing", "dangling")
    listing, blob = collected(["*"], WIDE)
    assert listing == [
        {"path": "dangling", "size": len("missing"), "omitted": "symlink"},
        {"path": "host", "size": len("/etc/hostname"), "omitted": "symlink"},
    ]
    assert blob == b""


def test_a_fifo_is_not_regular_and_does_not_block(workdir: Path) -> None:
    os.mkfifo("pipe")
    write("plain", b"ok")
    listing, blob = collected(["*"], WIDE)
    assert listing == [
        {"path": "pipe", "size": 0, "omitted": "not_regular"},
        {"path": "plain", "size": 2},
    ]
    assert blob == b"ok"


def test_a_socket_is_not_regular(workdir: Path) -> None:
    import socket

    with socket.socket(socket.AF_UNIX) as server:
        server.bind("sock")
        listing, blob = collected(["*"], WIDE)
    assert listing == [{"path": "sock", "size": 0, "omitted": "not_regular"}]
    assert blob == b""


def test_a_file_over_the_per_file_cap_is_omitted_and_the_next_still_sent(
    workdir: Path,
) -> None:
    write("a", b"x" * 10)
    write("b", b"y" * 11)
    write("c", b"z")
    listing, blob = collected(["*"], [10, 10, 100])
    assert listing == [
        {"path": "a", "size": 10},
        {"path": "b", "size": 11, "omitted": "file_too_large"},
        {"path": "c", "size": 1},
    ]
    assert blob == b"x" * 10 + b"z"


def test_files_past_the_count_cap_are_omitted_as_too_many(workdir: Path) -> None:
    os.symlink("x", "0link")
    for name in ("a", "b", "c", "d"):
        write(name, name.encode())
    listing, blob = collected(["*"], [2, 10, 100])
    assert listing == [
        {"path": "0link", "size": 1, "omitted": "symlink"},
        {"path": "a", "size": 1},
        {"path": "b", "size": 1},
        {"path": "c", "size": 1, "omitted": "too_many_files"},
        {"path": "d", "size": 1, "omitted": "too_many_files"},
    ]
    assert blob == b"ab"


def test_a_count_cap_of_zero_sends_no_file(workdir: Path) -> None:
    write("a", b"1")
    write("e")
    listing, blob = collected(["*"], [0, 10, 100])
    assert listing == [
        {"path": "a", "size": 1, "omitted": "too_many_files"},
        {"path": "e", "size": 0, "omitted": "too_many_files"},
    ]
    assert blob == b""


def test_a_file_past_the_total_cap_is_omitted_and_a_smaller_one_after_it_sent(
    workdir: Path,
) -> None:
    write("a", b"a" * 10)
    write("b", b"b" * 10)
    write("c", b"c" * 5)
    write("d", b"d")
    listing, blob = collected(["*"], [10, 10, 15])
    assert listing == [
        {"path": "a", "size": 10},
        {"path": "b", "size": 10, "omitted": "total_too_large"},
        {"path": "c", "size": 5},
        {"path": "d", "size": 1, "omitted": "total_too_large"},
    ]
    assert blob == b"a" * 10 + b"c" * 5


def test_an_unreadable_file_is_not_regular_not_an_error(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("secret", b"x")
    real_open = posix.open

    def refuse(path: Any, flags: int, *args: Any) -> int:
        if path == "secret":
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)

    monkeypatch.setattr(posix, "open", refuse)  # the module the runner calls
    assert runner._collect_files(["*"], WIDE) == (
        [{"path": "secret", "size": 1, "omitted": "not_regular"}],
        b"",
    )


def test_a_file_that_vanishes_between_the_walk_and_the_read_is_not_an_error(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("stays", b"1")
    monkeypatch.setattr(runner, "_matching", lambda patterns: ["gone", "stays"])
    listing, blob = runner._collect_files(["*"], WIDE)
    assert [entry["path"] for entry in listing][-1] == "stays"
    assert blob == b"1"


# --- _check_signature and main(input) --------------------------------------------------------

NEEDS = (
    'needs arguments, but the request has no "input"; define `def main():`, '
    'or send "input" to have it passed to main.'
)
CANNOT = (
    'cannot take the request\'s "input" as its one argument; define `def main(input):`, '
    'or leave "input" out of the request.'
)
CALLABLE_ONE = "class Main:\n    def __call__(self, x):\n        return x\nmain = Main()\n"
CALLABLE_NONE = "class Main:\n    def __call__(self):\n        return 0\nmain = Main()\n"


@pytest.mark.parametrize(
    ("source", "without_input", "with_input"),
    [
        pytest.param("def main(x):\n    return x\n", f"main(x) {NEEDS}", None, id="main(x)"),
        pytest.param("def main():\n    return 0\n", None, f"main() {CANNOT}", id="main()"),
        pytest.param("def main(*args):\n    return 0\n", None, None, id="main(*args)"),
        pytest.param("def main(x=1):\n    return 0\n", None, None, id="main(x=1)"),
        pytest.param(
            "def main(x, y=2):\n    return 0\n", f"main(x, y=2) {NEEDS}", None, id="main(x, y=2)"
        ),
        pytest.param(
            "def main(x, y):\n    return 0\n",
            f"main(x, y) {NEEDS}",
            f"main(x, y) {CANNOT}",
            id="main(x, y)",
        ),
        pytest.param(
            "def main(x, /):\n    return 0\n", f"main(x, /) {NEEDS}", None, id="main(x, /)"
        ),
        pytest.param(
            "def main(x, *rest):\n    return 0\n",
            f"main(x, *rest) {NEEDS}",
            None,
            id="main(x, *rest)",
        ),
        pytest.param(
            "def main(*, x):\n    return 0\n",
            f"main(*, x) {NEEDS}",
            f"main(*, x) {CANNOT}",
            id="main(*, x)",
        ),
        pytest.param(
            "def main(**kw):\n    return 0\n", None, f"main(**kw) {CANNOT}", id="main(**kw)"
        ),
        pytest.param("main = lambda x: x\n", f"main(x) {NEEDS}", None, id="lambda x"),
        pytest.param(CALLABLE_ONE, f"main(x) {NEEDS}", None, id="callable instance of one"),
        pytest.param(CALLABLE_NONE, None, f"main() {CANNOT}", id="callable instance of none"),
        pytest.param("main = print\n", None, None, id="a builtin"),
    ],
)
def test_main_s_signature_is_checked_against_how_it_will_be_called(
    source: str, without_input: str | None, with_input: str | None
) -> None:
    for wanted, message in ((False, without_input), (True, with_input)):
        if message is None:
            assert callable(runner._load_main(source, with_input=wanted))
        else:
            assert report_of(lambda w=wanted: runner._load_main(source, with_input=w)) == {
                "status": "error",
                "kind": "main_signature",
                "error": message,
            }


def test_an_async_main_is_main_async_with_input_too() -> None:
    payload = report_of(lambda: runner._load_main("async def main(x):\n    return x\n", True))
    assert payload["kind"] == "main_async"


@pytest.mark.parametrize(
    "value",
    [None, 0, "h\u00e9 \ud800", [1, [2, {"a": None}]], {"nested": {"k": [True, 1.5]}}],
    ids=["null", "zero", "a string", "a list", "an object"],
)
def test_run_passes_the_input_to_main(value: Any) -> None:
    source = "def main(data):\n    return {'got': data, 'type': type(data).__name__}\n"
    assert runner._run(source, {"input": value}) == {
        "status": "ok",
        "result": {"got": value, "type": type(value).__name__},
    }


def test_run_without_input_calls_main_with_nothing() -> None:
    source = "def main(*args):\n    return len(args)\n"
    assert runner._run(source, {}) == {"status": "ok", "result": 0}
    assert runner._run(source, None) == {"status": "ok", "result": 0}
    assert runner._run(source, {"input": None}) == {"status": "ok", "result": 1}


def test_run_reported_turns_a_signature_mismatch_into_its_report() -> None:
    report = runner._run_reported("def main():\n    return 1\n", {"input": 5})
    assert (report["kind"], report["error"]) == ("main_signature", f"main() {CANNOT}")


@pytest.mark.parametrize(
    ("meta", "parsed"),
    [
        (b"", {}),
        (b'{"input": null}', {"input": None}),
        (b'{"input": "\xed\xa0\x80"}', {"input": "\ud800"}),
        (
            b'{"output_files": ["*"], "caps": [1, 2, 3]}',
            {"output_files": ["*"], "caps": [1, 2, 3]},
        ),
    ],
    ids=["empty", "input null", "a lone surrogate", "output files"],
)
def test_parse_meta_reads_the_meta_json(meta: bytes, parsed: dict[str, Any]) -> None:
    assert runner._parse_meta(memoryview(meta)) == parsed


# --- a MemoryError frees what the script held ------------------------------------------------


class Held:
    """Something a frame holds, to watch for its release."""


def hold_and_fail(refs: list[weakref.ref[Held]]) -> None:
    held = Held()
    refs.append(weakref.ref(held))
    raise MemoryError


def test_release_frames_drops_the_locals_of_finished_frames_and_keeps_lines() -> None:
    refs: list[weakref.ref[Held]] = []
    try:
        hold_and_fail(refs)
    except MemoryError as exc:
        error = exc
    assert refs[0]() is not None
    tb = error.__traceback__
    assert tb is not None
    runner._release_frames(tb)  # this test's own frame is running: left alone
    assert refs[0]() is None
    assert tb.tb_next is not None
    assert tb.tb_next.tb_frame.f_code.co_name == "hold_and_fail"
    assert tb.tb_next.tb_lineno == hold_and_fail.__code__.co_firstlineno + 3


def test_a_memory_error_in_main_with_input_is_memory_limit_with_its_frames() -> None:
    source = "def main(x):\n    big = list(x)\n    raise MemoryError\n"
    report = runner._run_reported(source, {"input": [1, 2]})
    assert report["kind"] == "memory_limit"
    assert report["traceback"][-1] == {
        "file": "script",
        "line": 3,
        "function": "main",
        "code": "raise MemoryError",
    }


# --- _encode and _final_report keep the files listing ----------------------------------------

LISTING = [{"path": "a.txt", "size": 1}, {"path": "l", "size": 1, "omitted": "symlink"}]
START = resource.getrusage(resource.RUSAGE_SELF)


def test_a_success_with_files_keeps_them() -> None:
    report = {"status": "ok", "result": 1, "files": LISTING}
    assert json.loads(runner._encode(report, 1024)) == report


def test_a_result_too_large_keeps_the_files_listing() -> None:
    report = {"status": "ok", "result": "x" * 2000, "files": LISTING}
    encoded = json.loads(runner._encode(report, 1024))
    assert (encoded["kind"], encoded["files"]) == ("result_too_large", LISTING)


def test_an_error_report_trimmed_to_the_limit_keeps_the_files_listing() -> None:
    report = {
        "status": "error",
        "kind": "exception",
        "error": "ValueError in main(): boom",
        "traceback_text": "x" * 5000,
        "files": LISTING,
        "usage": {"cpu_time_ms": 1.0, "peak_memory_bytes": 1},
    }
    assert json.loads(runner._encode(report, 1024)) == {
        "status": "error",
        "kind": "exception",
        "error": "ValueError in main(): boom",
        "files": LISTING,
    }


def test_an_unencodable_result_keeps_the_files_listing() -> None:
    report = {"status": "ok", "result": {1, 2}, "files": LISTING}
    encoded = json.loads(runner._final_report(report, START, 1 << 20))
    assert (encoded["kind"], encoded["files"]) == ("invalid_result", LISTING)


# --- a whole request, from the Payload to the answer (in this process) ------------------------


def settings_with(**environ: str) -> Settings:
    return load_settings({f"PYEXEC_{name.upper()}": value for name, value in environ.items()})


def write_and_close(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def through_a_pipe(request: bytes) -> tuple[int, int, str, memoryview, memoryview]:
    """runner._read_request of ``request`` written into a real pipe by another thread."""
    read_end, write_end = os.pipe()
    writer = threading.Thread(target=write_and_close, args=(write_end, request))
    writer.start()
    try:
        return runner._read_request(read_end)
    finally:
        os.close(read_end)
        writer.join()


def end_to_end(body: dict[str, Any], settings: Settings | None = None) -> Outcome:
    """``body`` validated as the service does, sent as request bytes through a pipe,
    run as the runner's main() does, framed, and interpreted; the answer checked
    against its schema."""
    settings = settings or load_settings({})
    script, limits, payload = RequestValidator(settings).validate(body)
    meta_bytes, data_bytes = payload.meta_and_data()
    request = protocol.request_bytes(
        limits.cpu_seconds,
        settings.max_result_bytes,
        script.encode("utf-8", "surrogatepass"),
        meta_bytes,
        data_bytes,
    )
    _, max_result_bytes, source, meta_view, data = through_a_pipe(request)
    ready_usage = resource.getrusage(resource.RUSAGE_SELF)
    meta = runner._parse_meta(meta_view)
    report = runner._run_reported(source, meta, data)
    files = None
    if "output_files" in meta:
        report["files"], files = runner._collect_files(meta["output_files"], meta["caps"])
    frame = runner.report_frame(runner._final_report(report, ready_usage, max_result_bytes), files)
    record = RunRecord(report=frame, limits=limits, wants_files=payload.wants_files)
    outcome = interpret(record, 1 << 20, output_caps(settings))
    SCHEMAS[outcome.status == 200].validate(outcome.body)
    return outcome


TRANSFORM = """\
import csv, json, os, pathlib

def main(params):
    with open('in/table.csv', newline='') as handle:
        rows = list(csv.DictReader(handle))
    total = sum(int(row['n']) for row in rows) * params['factor']
    os.makedirs('out/charts', exist_ok=True)
    with open('out/summary.json', 'w') as handle:
        json.dump({'total': total}, handle)
    pathlib.Path('out/charts/plot.png').write_bytes(pathlib.Path('in/blob.bin').read_bytes())
    pathlib.Path('out/.secret').write_text('hidden')
    return {'rows': len(rows), 'total': total}
"""


def test_input_and_files_go_in_and_matching_files_come_back(workdir: Path) -> None:
    outcome = end_to_end(
        {
            "script": TRANSFORM,
            "input": {"factor": 10},
            "files": [
                {"path": "in/table.csv", "content": "n\n1\n2\n"},
                {"path": "in/blob.bin", "content": "iVBORwA=", "encoding": "base64"},
            ],
            "output_files": ["out/**", "in/*.csv"],
        }
    )
    assert outcome.status == 200
    assert outcome.body["result"] == {"rows": 2, "total": 30}
    assert outcome.body["files_collected"] is True
    assert outcome.body["files"] == [
        {
            "path": "in/table.csv",
            "size": 6,
            "mime_type": "text/csv",
            "encoding": "utf-8",
            "content": "n\n1\n2\n",
        },
        {
            "path": "out/charts/plot.png",
            "size": 5,
            "mime_type": "image/png",
            "encoding": "base64",
            "content": "iVBORwA=",
        },
        {
            "path": "out/summary.json",
            "size": 13,
            "mime_type": "application/json",
            "encoding": "utf-8",
            "content": '{"total": 30}',
        },
    ]


def test_a_bare_script_gets_no_files_fields(workdir: Path) -> None:
    outcome = end_to_end({"script": "def main():\n    open('x', 'w').close()\n    return 1\n"})
    assert outcome.status == 200
    assert "files" not in outcome.body
    assert "files_collected" not in outcome.body


def test_input_null_reaches_main_as_none(workdir: Path) -> None:
    outcome = end_to_end({"script": "def main(x):\n    return x is None\n", "input": None})
    assert (outcome.status, outcome.body["result"]) == (200, True)


def test_a_lone_surrogate_in_the_input_reaches_main(workdir: Path) -> None:
    outcome = end_to_end({"script": "def main(x):\n    return [x, len(x)]\n", "input": "a\ud800"})
    assert (outcome.status, outcome.body["result"]) == (200, ["a\ud800", 2])


def test_files_are_collected_when_main_raises(workdir: Path) -> None:
    source = (
        "import pathlib\n"
        "def main():\n"
        "    pathlib.Path('partial.txt').write_text('so far')\n"
        "    raise ValueError('boom')\n"
    )
    outcome = end_to_end({"script": source, "output_files": ["*.txt"]})
    assert (outcome.status, outcome.body["kind"]) == (400, "exception")
    assert outcome.body["files_collected"] is True
    assert [entry["content"] for entry in outcome.body["files"]] == ["so far"]


def test_a_file_that_cannot_be_written_is_an_exception_answer_with_files(
    workdir: Path,
) -> None:
    write("taken.txt", b"already here")
    outcome = end_to_end(
        {
            "script": "def main():\n    return 1\n",
            "files": [{"path": "taken.txt", "content": "new"}],
            "output_files": ["*"],
        }
    )
    assert (outcome.status, outcome.body["kind"]) == (400, "exception")
    assert "while writing the request's file 'taken.txt'" in outcome.body["error"]
    assert [entry["content"] for entry in outcome.body["files"]] == ["already here"]


def test_omitted_files_reach_the_answer_without_content(workdir: Path) -> None:
    source = (
        "import os, pathlib\n"
        "def main():\n"
        "    pathlib.Path('big.bin').write_bytes(b'x' * 20)\n"
        "    pathlib.Path('small.txt').write_text('ok')\n"
        "    os.symlink('small.txt', 'link')\n"
        "    os.mkfifo('fifo')\n"
        "    return 0\n"
    )
    settings = settings_with(max_output_file_bytes="10")
    outcome = end_to_end({"script": source, "output_files": ["*"]}, settings)
    assert outcome.status == 200
    assert outcome.body["files"] == [
        {"path": "big.bin", "size": 20, "omitted": "file_too_large"},
        {"path": "fifo", "size": 0, "omitted": "not_regular"},
        {"path": "link", "size": 9, "omitted": "symlink"},
        {
            "path": "small.txt",
            "size": 2,
            "mime_type": "text/plain",
            "encoding": "utf-8",
            "content": "ok",
        },
    ]


def test_a_result_too_large_still_returns_the_files(workdir: Path) -> None:
    source = (
        "import pathlib\n"
        "def main():\n    pathlib.Path('a.txt').write_text('a')\n    return 'x' * 5000\n"
    )
    outcome = end_to_end(
        {"script": source, "output_files": ["*"]}, settings_with(max_result_bytes="1024")
    )
    assert (outcome.status, outcome.body["kind"]) == (400, "result_too_large")
    assert [entry["path"] for entry in outcome.body["files"]] == ["a.txt"]


def test_a_main_signature_mismatch_reaches_the_client(workdir: Path) -> None:
    outcome = end_to_end({"script": "def main():\n    return 1\n", "input": [1]})
    assert (outcome.status, outcome.body["kind"]) == (400, "main_signature")


def test_a_file_named_with_a_backslash_does_not_lose_the_run_s_answer(workdir: Path) -> None:
    source = (
        "import pathlib\n"
        "def main():\n    pathlib.Path('a\\\\b.txt').write_text('1')\n    return 7\n"
    )
    outcome = end_to_end({"script": source, "output_files": ["*"]})
    assert (outcome.status, outcome.body.get("result")) == (200, 7)


# --- the runner as its own process (as the jail starts it, without the jail) ------------------


def runner_frame(cwd: Path, body: dict[str, Any]) -> bytes:
    """Start the runner (``python -I -S -B -u -c``) in ``cwd``, send the request for
    ``body`` and read its report frame (with the files' bytes when asked for)."""
    settings = load_settings({})
    script, limits, payload = RequestValidator(settings).validate(body)
    meta, data = payload.meta_and_data()
    control_r, control_w = os.pipe()
    result_r, result_w = os.pipe()
    argv = [sys.executable, *PYTHON_FLAGS, "-c", RUNNER_SOURCE]
    argv += ["--control-fd", str(control_r), "--result-fd", str(result_w), "--preimport", ""]
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        pass_fds=(control_r, result_w),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    os.close(control_r)
    os.close(result_w)
    received = b""
    try:
        request = protocol.request_bytes(
            limits.cpu_seconds, settings.max_result_bytes, script.encode(), meta, data
        )
        os.write(control_w, request)
        deadline = time.monotonic() + THREAD_TIMEOUT
        while True:
            body_bytes = received.split(b"\n", 1)[1] if received.count(b"\n") else b""
            length = protocol.report_length(body_bytes, payload.wants_files)
            if length is not None and len(body_bytes) >= length:
                break
            readable, _, _ = select.select([result_r], [], [], deadline - time.monotonic())
            assert readable, "the runner wrote no whole report in time"
            chunk = os.read(result_r, 1 << 16)
            assert chunk, proc.communicate(timeout=THREAD_TIMEOUT)[1].decode()
            received += chunk
    finally:
        os.close(control_w)
        os.close(result_r)
        proc.communicate(timeout=THREAD_TIMEOUT)
    return received.split(b"\n", 1)[1]


def test_the_runner_process_writes_reads_and_returns_files(tmp_path: Path) -> None:
    source = (
        "import helper, pathlib\n"
        "def main(x):\n"
        "    pathlib.Path('out.txt').write_text(helper.shout(x))\n"
        "    return sorted(__import__('os').listdir('.'))\n"
    )
    frame = runner_frame(
        tmp_path,
        {
            "script": source,
            "input": "hi",
            "files": [{"path": "helper.py", "content": "def shout(s):\n    return s.upper()\n"}],
            "output_files": ["*.txt"],
        },
    )
    split = protocol.split_report(frame, True)
    assert split is not None
    payload, blob = split
    report = json.loads(payload)
    assert report["result"] == ["helper.py", "out.txt"]
    assert report["files"] == [{"path": "out.txt", "size": 2}]
    assert blob == b"HI"


def test_output_files_are_matched_in_the_working_directory_even_after_a_chdir(
    tmp_path: Path,
) -> None:
    source = (
        "import os, pathlib\n"
        "def main():\n"
        "    os.makedirs('out')\n"
        "    os.chdir('out')\n"
        "    pathlib.Path('r.csv').write_text('1')\n"
        "    return 0\n"
    )
    frame = runner_frame(tmp_path, {"script": source, "output_files": ["out/*.csv"]})
    split = protocol.split_report(frame, True)
    assert split is not None
    assert json.loads(split[0])["files"] == [{"path": "out/r.csv", "size": 1}]
