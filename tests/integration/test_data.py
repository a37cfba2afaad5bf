"""Data in and out of a real jail: ``input`` for main(), ``files`` written into the
working directory, ``output_files`` collected back (docs/api.md#data-in-and-out).

Every answer is validated against its schema by the Api client; hostile layouts
(symlinks out of the jail's working directory, a FIFO, a directory loop) are built
by the script itself, which is the only way anything gets into a jail.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Callable
from typing import Any

import pytest

from pyexec.api import Service
from tests.live_server import LiveServer
from tests.support import Api, call, check_schema

ECHO = "def main(data):\n    return {'got': data, 'type': type(data).__name__}\n"


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        pytest.param({"a": [1, 2.5, "\u00e9"]}, "dict", id="object"),
        pytest.param([1, None, True], "list", id="array"),
        pytest.param("text", "str", id="string"),
        pytest.param(None, "NoneType", id="null"),
        pytest.param(12345678901234567890, "int", id="big integer"),
        pytest.param("\ud800 lone surrogate", "str", id="lone surrogate"),
    ],
)
def test_input_is_passed_to_main(api: Api, value: Any, type_name: str) -> None:
    status, body = api.post({"script": ECHO, "input": value})
    assert status == 200
    assert body["result"] == {"got": value, "type": type_name}
    assert "files" not in body
    assert "files_collected" not in body


def test_without_input_main_is_called_with_no_argument(api: Api) -> None:
    status, body = api.post({"script": "def main(data=7):\n    return data\n"})
    assert (status, body["result"]) == (200, 7)


def test_input_for_a_main_without_a_parameter_names_both_fixes(api: Api) -> None:
    status, body = api.post({"script": "def main():\n    return 1\n", "input": 1})
    assert (status, body["kind"]) == (400, "main_signature")
    assert "def main(input):" in body["error"]
    assert 'leave "input" out' in body["error"]


def test_a_main_with_a_parameter_and_no_input_names_both_fixes(api: Api) -> None:
    status, body = api.post({"script": ECHO})
    assert (status, body["kind"]) == (400, "main_signature")
    assert "def main():" in body["error"]
    assert 'send "input"' in body["error"]


def test_input_over_its_limit_is_refused_before_any_jail(api: Api) -> None:
    status, body = api.post({"script": ECHO, "input": "x" * (1024 * 1024)})
    assert (status, body["kind"], body["field"]) == (400, "bad_request", "input")
    assert "1048578 bytes" in body["error"]


def test_input_nested_too_deeply_is_refused(api: Api) -> None:
    deep: Any = 1
    for _ in range(101):
        deep = [deep]
    status, body = api.post({"script": ECHO, "input": deep})
    assert (status, body["kind"], body["field"]) == (400, "bad_request", "input")
    ok: Any = 1
    for _ in range(100):
        ok = [ok]
    status, body = api.post({"script": "def main(d):\n    return 1\n", "input": ok})
    assert status == 200


def test_an_uploaded_os_py_does_not_stand_in_for_os(api: Api) -> None:
    """As in a plain Python. The runner no longer imports os at start-up, but os is
    frozen into the interpreter (CPython 3.11 and later), found before sys.path."""
    script = "import os\n\n\ndef main():\n    return os.__file__\n"
    files = [{"path": "os.py", "content": "raise SystemExit('the upload was imported')\n"}]
    status, body = api.post({"script": script, "files": files})
    assert status == 200, body
    assert body["result"].startswith("/usr/lib/python3")


def test_files_are_written_before_the_script_loads_and_modules_import(api: Api) -> None:
    script = (
        "import os\nimport helper\nfrom pkg import sub\n"
        "def main():\n"
        "    tree = sorted(os.path.join(d, f) for d, _, fs in os.walk('.') for f in fs)\n"
        "    raw = open('data/blob.bin', 'rb').read()\n"
        "    return {'tree': tree, 'helper': helper.VALUE, 'sub': sub.NAME,\n"
        "            'raw': list(raw), 'text': open('notes/a b.txt').read()}\n"
    )
    files = [
        {"path": "helper.py", "content": "VALUE = 41 + 1\n"},
        {"path": "pkg/__init__.py", "content": ""},
        {"path": "pkg/sub.py", "content": "NAME = 'sub'\n"},
        {
            "path": "data/blob.bin",
            "content": base64.b64encode(b"\x00\xff\x10").decode(),
            "encoding": "base64",
        },
        {"path": "notes/a b.txt", "content": "h\u00e9llo\n", "encoding": "utf-8"},
    ]
    status, body = api.post({"script": script, "files": files})
    assert status == 200, body
    assert body["result"] == {
        "tree": [
            "./data/blob.bin",
            "./helper.py",
            "./notes/a b.txt",
            "./pkg/__init__.py",
            "./pkg/sub.py",
        ],
        "helper": 42,
        "sub": "sub",
        "raw": [0, 255, 16],
        "text": "h\u00e9llo\n",
    }


def _csv_text(rows: int) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "name", "score"])
    for index in range(rows):
        writer.writerow([index, f"name-{index}", index % 97])
    return out.getvalue()


def test_a_csv_in_is_read_by_pandas_and_a_csv_out_comes_back(api: Api) -> None:
    """The everyday shape: a 12k-row CSV in, a summary out as a file and a result."""
    script = (
        "import os\nimport pandas as pd\n"
        "def main():\n"
        "    frame = pd.read_csv('in.csv')\n"
        "    os.makedirs('out')\n"
        "    frame.groupby(frame['score'] % 2)['id'].count().to_csv('out/summary.csv')\n"
        "    return {'rows': len(frame), 'total': int(frame['score'].sum())}\n"
    )
    text = _csv_text(12_000)
    status, body = api.post(
        {
            "script": script,
            "files": [{"path": "in.csv", "content": text}],
            "output_files": ["out/*.csv"],
        }
    )
    assert status == 200, body
    assert body["result"] == {"rows": 12_000, "total": sum(i % 97 for i in range(12_000))}
    assert body["files_collected"] is True
    (summary,) = body["files"]
    assert summary["path"] == "out/summary.csv"
    assert summary["mime_type"] == "text/csv"
    assert summary["encoding"] == "utf-8"
    assert summary["content"].splitlines()[0] == "score,id"
    assert summary["size"] == len(summary["content"].encode())


def test_output_files_match_by_pattern_sorted_with_types_and_encodings(api: Api) -> None:
    script = (
        "import os\n"
        "def main():\n"
        "    os.makedirs('a/b/c')\n"
        "    os.makedirs('.hidden')\n"
        "    for name in ('z.txt', 'a/one.png', 'a/b/c/deep.json', '.env', '.hidden/x.txt',\n"
        "                 'a/b/skip.log'):\n"
        "        open(name, 'wb').write(b'\\x89PNG\\x00' if name.endswith('.png') else b'{}')\n"
        "    return 0\n"
    )
    status, body = api.post(
        {
            "script": script,
            "files": [{"path": "given.txt", "content": "mine"}],
            "output_files": ["**/*.png", "**/*.json", "*.txt", ".env"],
        }
    )
    assert status == 200, body
    listing = [(f["path"], f["mime_type"], f["encoding"]) for f in body["files"]]
    assert listing == [
        (".env", "application/octet-stream", "utf-8"),
        ("a/b/c/deep.json", "application/json", "utf-8"),
        ("a/one.png", "image/png", "base64"),
        ("given.txt", "text/plain", "utf-8"),
        ("z.txt", "text/plain", "utf-8"),
    ]
    png = next(f for f in body["files"] if f["path"] == "a/one.png")
    assert base64.b64decode(png["content"]) == b"\x89PNG\x00"


def test_double_star_returns_only_what_the_caller_and_the_script_put_there(api: Api) -> None:
    """The working directory is empty at the hand-over, even in a pre-warmed jail:
    nothing of the runner, the interpreter or the pool is in it."""
    status, body = api.post(
        {
            "script": "def main():\n    open('made.txt', 'w').write('1')\n    return 0\n",
            "files": [{"path": "sent.txt", "content": "2"}],
            "output_files": ["**"],
        }
    )
    assert status == 200
    assert [f["path"] for f in body["files"]] == ["made.txt", "sent.txt"]


ESCAPES = (
    "import os\n"
    "def main():\n"
    "    os.symlink('/etc/passwd', 'passwd')\n"
    "    os.symlink('/proc/self/environ', 'environ')\n"
    "    os.symlink('/opt/pyexec/sandbox/pyvenv.cfg', 'pyvenv.cfg')\n"
    "    os.symlink('..', 'loop')\n"
    "    os.symlink('.', 'self')\n"
    "    os.mkfifo('fifo')\n"
    "    os.makedirs('dir')\n"
    "    os.symlink('/opt/pyexec/sandbox', 'dir/sandbox')\n"
    "    open('plain.txt', 'w').write('ok')\n"
    "    return 0\n"
)


def test_symlinks_fifos_and_loops_are_listed_never_followed(api: Api) -> None:
    status, body = api.post({"script": ESCAPES, "output_files": ["**", "**/*"]})
    assert status == 200, body
    by_path = {entry["path"]: entry for entry in body["files"]}
    assert sorted(by_path) == [
        "dir/sandbox",
        "environ",
        "fifo",
        "loop",
        "passwd",
        "plain.txt",
        "pyvenv.cfg",
        "self",
    ]
    for name in ("dir/sandbox", "environ", "loop", "passwd", "pyvenv.cfg", "self"):
        assert by_path[name]["omitted"] == "symlink", by_path[name]
        assert "content" not in by_path[name]
    assert by_path["fifo"]["omitted"] == "not_regular"
    assert by_path["plain.txt"]["content"] == "ok"
    assert "root:" not in json.dumps(body)


def test_files_are_collected_when_main_raises_or_exits(api: Api) -> None:
    for script, kind in (
        ("def main():\n    open('x.txt', 'w').write('1')\n    raise ValueError(2)\n", "exception"),
        (
            "import sys\ndef main():\n    open('x.txt', 'w').write('1')\n    sys.exit(3)\n",
            "exited",
        ),
        ("def main():\n    open('x.txt', 'w').write('1')\n    return {1}\n", "invalid_result"),
    ):
        status, body = api.post({"script": script, "output_files": ["*.txt"]})
        assert (status, body["kind"]) == (400, kind)
        assert body["files_collected"] is True
        assert [f["content"] for f in body["files"]] == ["1"]


@pytest.mark.parametrize(
    ("script", "extra", "kind"),
    [
        pytest.param(
            "import time\ndef main():\n    open('x.txt', 'w').write('1')\n    time.sleep(30)\n",
            {"timeout_seconds": 1},
            "timeout",
            id="timeout",
        ),
        pytest.param(
            "import os\ndef main():\n    open('x.txt', 'w').write('1')\n    os._exit(0)\n",
            {},
            "exited",
            id="os._exit",
        ),
        pytest.param(
            "import sys\ndef main():\n    open('x.txt', 'w').write('1')\n"
            "    while True:\n        sys.stdout.write('x' * 65536)\n",
            {},
            "output_limit",
            id="output flood",
        ),
    ],
)
def test_a_killed_run_says_its_files_were_not_collected(
    api: Api, script: str, extra: dict[str, Any], kind: str
) -> None:
    status, body = api.post({"script": script, "output_files": ["**"], **extra})
    assert (status, body["kind"]) == (400, kind)
    assert body["files"] == []
    assert body["files_collected"] is False


@pytest.mark.parametrize(
    ("files", "message"),
    [
        pytest.param([{"path": "../etc/passwd", "content": ""}], "'..'", id="dot-dot"),
        pytest.param([{"path": "/abs", "content": ""}], "leading", id="absolute"),
        pytest.param([{"path": "a\\b", "content": ""}], "backslash", id="backslash"),
        pytest.param(
            [{"path": "a", "content": ""}, {"path": "a", "content": ""}], "also", id="duplicate"
        ),
        pytest.param(
            [{"path": "a", "content": ""}, {"path": "a/b", "content": ""}],
            "inside",
            id="file as a directory",
        ),
        pytest.param(
            [{"path": "a", "content": "YQ", "encoding": "base64"}], "padded", id="unpadded"
        ),
        pytest.param(
            [{"path": "a", "content": "a-_b", "encoding": "base64"}],
            "standard base64",
            id="url-safe alphabet",
        ),
    ],
)
def test_bad_files_are_refused_with_their_index_and_path(
    api: Api, files: list[dict[str, str]], message: str
) -> None:
    status, body = api.post({"script": "def main():\n    return 1\n", "files": files})
    assert (status, body["kind"], body["field"]) == (400, "bad_request", "files")
    assert message in body["error"]
    assert body["index"] == len(files) - 1
    assert body["path"] == files[-1]["path"]


def test_output_caps_list_what_is_left_out_and_the_run_still_succeeds(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(
        PYEXEC_POOL_SIZE="0",
        PYEXEC_LIGHT_POOL_SIZE="0",
        PYEXEC_MAX_OUTPUT_FILES="2",
        PYEXEC_MAX_OUTPUT_FILE_BYTES="1000",
        PYEXEC_MAX_OUTPUT_FILES_BYTES="1500",
    )
    script = (
        "def main():\n"
        "    for name, size in (('a', 800), ('b', 2000), ('c', 800), ('d', 10), ('e', 10)):\n"
        "        open(name, 'w').write('x' * size)\n"
        "    return 'done'\n"
    )
    answer = call(service, {"script": script, "output_files": ["*"]})
    assert answer.status == 200, answer.body
    check_schema(200, answer.body)
    listing = [(f["path"], f["size"], f.get("omitted")) for f in answer.body["files"]]
    assert listing == [
        ("a", 800, None),
        ("b", 2000, "file_too_large"),
        ("c", 800, "total_too_large"),
        ("d", 10, None),
        ("e", 10, "too_many_files"),
    ]


def test_a_megabyte_csv_round_trips_over_real_http(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server()
    text = _csv_text(60_000)
    assert len(text) > 1024 * 1024
    script = (
        "import pandas as pd\n"
        "def main(options):\n"
        "    frame = pd.read_csv('in.csv')\n"
        "    frame[frame['score'] < options['below']].to_csv('small.csv', index=False)\n"
        "    return len(frame)\n"
    )
    status, body = server.post(
        "/execute",
        {
            "script": script,
            "input": {"below": 10},
            "files": [{"path": "in.csv", "content": text}],
            "output_files": ["small.csv"],
        },
    )
    assert status == 200, body
    check_schema(200, body)
    assert body["result"] == 60_000
    (small,) = body["files"]
    rows = small["content"].splitlines()
    assert rows[0] == "id,name,score"
    assert len(rows) - 1 == sum(1 for i in range(60_000) if i % 97 < 10)
