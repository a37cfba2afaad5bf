"""The body of ``POST /execute``, built from ``execute``'s and ``run_code``'s arguments.

Fields the caller leaves out are left out of the body, so the server's defaults apply;
``input`` is left out only when not given at all (UNSET), so that ``input=None``
sends JSON null and calls ``main(None)``.
"""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from pyexec_client.errors import RequestError


class Unset(enum.Enum):
    """The type of UNSET: "no ``input``", which None cannot mean (None is JSON null)."""

    UNSET = enum.auto()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET

# run_code: the caller's code travels as a file and runs as __main__ from it, so its
# tracebacks name snippet.py with the code's own line numbers.
SNIPPET_PATH: Final = "snippet.py"
RUN_CODE_SCRIPT: Final = (
    f'import runpy\n\n\ndef main():\n    runpy.run_path("{SNIPPET_PATH}", run_name="__main__")\n'
)


def encode_files(files: Mapping[str, str | bytes]) -> list[dict[str, str]]:
    """The request's ``files``: text as UTF-8, bytes as base64."""
    encoded = []
    for path, content in files.items():
        if isinstance(content, bytes):
            encoded.append(
                {
                    "path": path,
                    "content": base64.b64encode(content).decode("ascii"),
                    "encoding": "base64",
                }
            )
        elif isinstance(content, str):
            encoded.append({"path": path, "content": content})
        else:
            raise TypeError(f"files[{path!r}] is {type(content).__name__}, not str or bytes")
    return encoded


def execute_body(
    script: str,
    *,
    input: object = UNSET,
    files: Mapping[str, str | bytes] | None = None,
    output_files: Sequence[str] | None = None,
    timeout_seconds: float | None = None,
    cpu_seconds: int | None = None,
    memory_mb: int | None = None,
    coerce_result: bool | None = None,
) -> dict[str, Any]:
    """The request body; each keyword is the request field of the same name."""
    body: dict[str, Any] = {"script": script}
    if input is not UNSET:
        body["input"] = input
    if files is not None:
        body["files"] = encode_files(files)
    if output_files is not None:
        if isinstance(output_files, str):
            raise TypeError("output_files is a list of glob patterns, not one string")
        body["output_files"] = list(output_files)
    limits = {
        "timeout_seconds": timeout_seconds,
        "cpu_seconds": cpu_seconds,
        "memory_mb": memory_mb,
    }
    body.update({name: value for name, value in limits.items() if value is not None})
    if coerce_result is not None:
        body["coerce_result"] = coerce_result
    return body


def run_code_body(
    code: str,
    *,
    files: Mapping[str, str | bytes] | None = None,
    output_files: Sequence[str] | None = None,
    timeout_seconds: float | None = None,
    cpu_seconds: int | None = None,
    memory_mb: int | None = None,
) -> dict[str, Any]:
    """The body that runs ``code`` (no ``main()``) from the file snippet.py. No
    ``coerce_result``: the wrapper's ``main()`` returns None, nothing to convert."""
    if files is not None and SNIPPET_PATH in files:
        raise ValueError(f"run_code sends the code as {SNIPPET_PATH}; give the file another name")
    return execute_body(
        RUN_CODE_SCRIPT,
        files={SNIPPET_PATH: code, **(files or {})},
        output_files=output_files,
        timeout_seconds=timeout_seconds,
        cpu_seconds=cpu_seconds,
        memory_mb=memory_mb,
    )


def encode_body(body: Mapping[str, Any]) -> bytes:
    """The body as JSON bytes; what JSON cannot hold is a RequestError before sending."""
    try:
        return json.dumps(body, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise RequestError(f"The request cannot be sent as JSON: {exc}") from exc
