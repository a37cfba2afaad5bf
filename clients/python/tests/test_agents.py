"""What the agent integrations share (pyexec_client._agents) and ``pyexec mcp``'s command
line, without google-adk or mcp: no server. The integrations themselves are tested in
tests/agents (make test-agents)."""

from __future__ import annotations

import importlib.util

import pytest
from live import run_cli

from pyexec_client import OutputFile
from pyexec_client._agents import (
    defines_main,
    exit_code,
    exited_cleanly,
    failure_text,
    returned_files,
    trimmed_traceback,
)
from pyexec_client._cli_args import McpCommand, parse_command
from pyexec_client.errors import ScriptError

RUN_CODE_TRACEBACK = """\
Traceback (most recent call last):
  File "script", line 5, in main
    runpy.run_path("snippet.py", run_name="__main__")
  File "<frozen runpy>", line 291, in run_path
  File "<frozen runpy>", line 98, in _run_module_code
  File "<frozen runpy>", line 88, in _run_code
  File "snippet.py", line 4, in <module>
    x = 1/0
        ~^~
ZeroDivisionError: division by zero
"""

CHAINED = """\
Traceback (most recent call last):
  File "snippet.py", line 2, in <module>
    {}["a"]
KeyError: 'a'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "script", line 5, in main
    runpy.run_path("snippet.py", run_name="__main__")
  File "<frozen runpy>", line 291, in run_path
  File "snippet.py", line 4, in <module>
    raise ValueError("no a")
  File "script", line 1, in helper
    pass
ValueError: no a
"""


def script_error(kind: str, **body: object) -> ScriptError:
    return ScriptError(
        f"failed: {kind}", status=400, kind=kind, body={"kind": kind, "error": "x", **body}
    )


def test_defines_main_reads_the_top_level_only() -> None:
    assert defines_main("def main():\n    return 1\n") is True
    assert defines_main("async def main():\n    pass\n") is True
    assert defines_main("from tools import run as main\n") is True
    assert defines_main("main = lambda: 1\n") is True
    assert defines_main("print(1)\nif True:\n    def main(): pass\n") is False
    assert defines_main("def helper():\n    def main(): pass\n") is False
    assert defines_main("def main(:\n") is None
    assert defines_main("x = '\0'") is None


def test_run_code_tracebacks_start_at_the_code_s_own_lines() -> None:
    assert trimmed_traceback(RUN_CODE_TRACEBACK) == (
        "Traceback (most recent call last):\n"
        '  File "snippet.py", line 4, in <module>\n'
        "    x = 1/0\n"
        "        ~^~\n"
        "ZeroDivisionError: division by zero\n"
    )
    trimmed = trimmed_traceback(CHAINED)
    assert "runpy" not in trimmed
    assert 'File "script", line 5' not in trimmed
    # A frame named "script" after the code's own is the code's, not the wrapper's.
    assert '  File "script", line 1, in helper\n    pass\n' in trimmed
    assert trimmed.count('File "snippet.py"') == 2


def test_a_failure_says_what_python_would_say() -> None:
    raised = script_error("exception", traceback_text=RUN_CODE_TRACEBACK)
    assert failure_text(raised, snippet=True).startswith(
        'Traceback (most recent call last):\n  File "snippet.py"'
    )
    assert failure_text(raised, snippet=False) == RUN_CODE_TRACEBACK
    assert exit_code(raised) == 1
    exited = script_error("exited", exit_code=3)
    assert failure_text(exited, snippet=True) == "The code exited with status 3."
    assert failure_text(exited, snippet=False) == "failed: exited"
    assert (exit_code(exited), exited_cleanly(exited)) == (3, False)
    assert exited_cleanly(script_error("exited", exit_code=0))
    killed = script_error("timeout", signal="SIGKILL")
    assert (exit_code(killed), failure_text(killed, snippet=True)) == (None, "failed: timeout")


def test_returned_files_leave_out_what_the_request_sent_unchanged() -> None:
    def output(path: str, content: bytes | None) -> OutputFile:
        omitted = None if content is not None else "file_too_large"
        return OutputFile(path, len(content or b""), "text/plain", content, omitted)

    files = [
        output("in.txt", b"same"),
        output("changed.txt", b"new"),
        output("made.txt", b"made"),
        output("snippet.py", b"print(1)\n"),
        output("big.bin", None),
    ]
    sent = {"in.txt": b"same", "changed.txt": b"old"}
    kept = returned_files(files, sent, code="print(1)\n")
    assert [entry.path for entry in kept] == ["changed.txt", "made.txt", "big.bin"]
    # Without code (execute), snippet.py is a file like any other.
    assert "snippet.py" in [entry.path for entry in returned_files(files, sent)]


def test_pyexec_mcp_parses_its_own_options() -> None:
    command = parse_command(
        ["mcp", "--url", "http://localhost:8080", "--output-files", "out/**"],
        {"PYEXEC_API_KEY": "key-from-the-environment"},
    )
    assert isinstance(command, McpCommand)
    assert command.output_files == ("out/**",)
    assert command.connection.api_key == "key-from-the-environment"
    with pytest.raises(SystemExit):
        parse_command(["mcp", "--url", "http://localhost:8080", "--json"], {})


@pytest.mark.skipif(
    importlib.util.find_spec("mcp") is not None, reason="the mcp extra is installed here"
)
def test_pyexec_mcp_without_the_extra_says_how_to_install_it() -> None:
    answer = run_cli("mcp", "--url", "http://127.0.0.1:9")
    assert answer.returncode == 2
    assert "pip install 'pyexec-client[mcp]'" in answer.stderr
    assert answer.stdout == ""
