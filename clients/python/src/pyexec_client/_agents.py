"""What the agent integrations share (pyexec_client.adk, pyexec_client.mcp_server), with
no dependency of theirs: which returned files to hand back, what a failed run tells
the model, and whether code is a script with ``main()``.

An agent's code is run with ``run_code`` (or, by the MCP tool, with ``execute`` when it
defines ``main()``); its answers are shaped here for a model to read: the wrapper's
frames left out of tracebacks, the request's own files not echoed back.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from typing import Final

from pyexec_client._request import SNIPPET_PATH
from pyexec_client._results import OutputFile, RunResult
from pyexec_client.errors import ScriptError

DEFAULT_OUTPUT_FILES: Final = ("**",)

# The kinds whose run raised in Python, as `python file.py` would exit.
_PYTHON_EXIT_1 = frozenset({"exception", "syntax_error"})

# A frame line of a Python traceback, and the frames of run_code's wrapper and runpy.
_FRAME = re.compile(r'  File "(?P<file>[^"]*)", line \d+')
_WRAPPER_FILES = frozenset({"script", "<frozen runpy>"})
_TRACEBACK_HEADER = "Traceback (most recent call last):"


def defines_main(code: str) -> bool | None:
    """Whether ``code`` defines ``main`` at its top level (a function or a name bound
    by assignment or import); None when it does not parse."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "main":
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
            (alias.asname or alias.name) == "main" for alias in node.names
        ):
            return True
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(target, ast.Name) and target.id == "main" for target in targets):
            return True
    return False


def returned_files(
    files: Sequence[OutputFile], sent: Mapping[str, bytes], *, code: str | None = None
) -> list[OutputFile]:
    """The returned files a caller has not seen: ``output_files`` patterns such as
    ``**`` match the request's own files too, so those that come back unchanged (and
    run_code's snippet.py, the code itself) are left out."""
    own = dict(sent)
    if code is not None:
        own[SNIPPET_PATH] = code.encode("utf-8")
    return [
        output for output in files if output.path not in own or output.content != own[output.path]
    ]


def trimmed_traceback(text: str) -> str:
    """A run_code traceback without the frames of its wrapper (``script``, ``main``)
    and of runpy, so that it starts at the code's own snippet.py."""
    lines = text.splitlines(keepends=True)
    kept: list[str] = []
    skipping = False  # within a wrapper frame at the start of a traceback
    at_start = False
    for line in lines:
        frame = _FRAME.match(line)
        if line.rstrip("\n") == _TRACEBACK_HEADER:
            at_start, skipping = True, False
        elif frame is not None:
            skipping = at_start and frame.group("file") in _WRAPPER_FILES
            at_start = skipping
            if skipping:
                continue
        elif skipping and line.startswith("    "):
            continue
        else:
            at_start = skipping = False
        kept.append(line)
    return "".join(kept)


def failure_text(error: ScriptError, *, snippet: bool) -> str:
    """What a failed run tells the model after its own stderr: the traceback (for
    code run with run_code, from snippet.py on), else the service's sentence."""
    if error.traceback:
        return trimmed_traceback(error.traceback) if snippet else error.traceback
    if snippet and error.kind == "exited":
        # The service's sentence speaks of main(), which run_code's caller never wrote.
        return f"The code exited with status {error.body.get('exit_code')}."
    return str(error)


def exit_code(error: ScriptError) -> int | None:
    """The status ``python file.py`` would have exited with, where one is known: 1 for
    an exception, the code's own for ``sys.exit``; None for a run the sandbox stopped."""
    if error.kind in _PYTHON_EXIT_1:
        return 1
    code = error.body.get("exit_code")
    if error.kind == "exited" and isinstance(code, int) and not isinstance(code, bool):
        return code
    return None


def exited_cleanly(error: ScriptError) -> bool:
    """Whether the failure is ``sys.exit(0)`` (or ``sys.exit()``): a success for a
    program, which run_code reports as the ``exited`` kind."""
    return error.kind == "exited" and error.body.get("exit_code") == 0


def notes(answer: RunResult | ScriptError, files: Sequence[OutputFile]) -> list[str]:
    """What the model should know that stdout does not say: a stream cut at the
    service's limit, a file matched but not returned."""
    said = [
        f"[pyexec: {name} was cut at the service's output limit]"
        for name, cut in (
            ("stdout", answer.stdout_truncated),
            ("stderr", answer.stderr_truncated),
        )
        if cut
    ]
    said.extend(
        f"[pyexec: {output.path} ({output.size} bytes) was not returned: {output.omitted}]"
        for output in files
        if output.content is None
    )
    return said
