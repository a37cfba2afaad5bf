"""What a request carries besides its script and limits: ``input``, ``files`` and
``output_files``, checked and ready for the jail.

Built from a schema-valid body by ``payload_from_body``; every refusal is a
RequestError naming the field (and for a file, its index and path). The runner
gets it as the request's meta JSON and data bytes (pyexec/protocol.py): nothing of
it for a bare script, so the hello path stays as it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyexec.errors import RequestError
from pyexec.files import FileCaps, decode_files, pattern_problem
from pyexec.settings import Settings

MAX_INPUT_DEPTH = 100
# Sent to the runner with a request that asks for coerce_result (pyexec/coerce.py).
COERCE_SOURCE = (Path(__file__).parent / "coerce.py").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Payload:
    """A run's data: the input's JSON text (None: main() takes no argument), the files
    to write, and the patterns of the files to return (None: return none)."""

    input_json: bytes | None = None
    files: tuple[tuple[str, bytes], ...] = ()
    output_files: tuple[str, ...] | None = None
    caps: FileCaps | None = None
    coerce_result: bool = False

    @property
    def wants_files(self) -> bool:
        """Whether the answer carries ``files``."""
        return self.output_files is not None

    def meta_and_data(self) -> tuple[bytes, bytes]:
        """The request's meta JSON and data bytes for the runner; both empty when
        there is nothing but the script."""
        fields: list[bytes] = []
        if self.input_json is not None:
            fields.append(b'"input": ' + self.input_json)
        if self.files:
            listing = [[path, len(data)] for path, data in self.files]
            fields.append(b'"files": ' + json.dumps(listing).encode())
        if self.output_files is not None and self.caps is not None:
            caps = [self.caps.max_files, self.caps.max_file_bytes, self.caps.max_total_bytes]
            fields.append(b'"output_files": ' + json.dumps(list(self.output_files)).encode())
            fields.append(b'"caps": ' + json.dumps(caps).encode())
        if self.coerce_result:
            fields.append(b'"coerce": ' + json.dumps(COERCE_SOURCE).encode())
        if not fields:
            return b"", b""
        meta = b"{" + b", ".join(fields) + b"}"
        return meta, b"".join(data for _, data in self.files)


def output_caps(settings: Settings) -> FileCaps:
    """The caps on returned files, from the settings."""
    return FileCaps(
        settings.max_output_files,
        settings.max_output_file_bytes,
        settings.max_output_files_bytes,
    )


def payload_from_body(body: dict[str, Any], settings: Settings) -> Payload:
    """The Payload of a schema-valid request body, or RequestError."""
    input_json = _input_json(body["input"], settings.max_input_bytes) if "input" in body else None
    files: tuple[tuple[str, bytes], ...] = ()
    if body.get("files"):
        per_file = min(settings.file_size_mb * 1024 * 1024, settings.max_files_bytes)
        files = tuple(decode_files(body["files"], per_file, settings.max_files_bytes))
    output_files = None
    if "output_files" in body:
        for index, pattern in enumerate(body["output_files"]):
            problem = pattern_problem(pattern)
            if problem is not None:
                raise RequestError(
                    f'output_files[{index}] "{pattern}" {problem}.',
                    field="output_files",
                    index=index,
                )
        output_files = tuple(body["output_files"])
    return Payload(
        input_json, files, output_files, output_caps(settings), body.get("coerce_result") is True
    )


def _input_json(value: Any, max_bytes: int) -> bytes:
    """``input`` as compact JSON (UTF-8; a lone surrogate passed through as the request
    had it), or RequestError when it is too deep or too large."""
    _check_depth(value)
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    data = text.encode("utf-8", "surrogatepass")
    if len(data) > max_bytes:
        raise RequestError(
            f'"input" is {len(data)} bytes as compact JSON; the limit is {max_bytes} '
            "(PYEXEC_MAX_INPUT_BYTES). Send big data as a file instead.",
            field="input",
        )
    return data


def _check_depth(value: Any) -> None:
    """Refuse input nested more than MAX_INPUT_DEPTH levels (without recursion)."""
    pending: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, (dict, list)) else []
    while pending:
        item, depth = pending.pop()
        if depth > MAX_INPUT_DEPTH:
            raise RequestError(
                f'"input" is nested more than {MAX_INPUT_DEPTH} levels deep.', field="input"
            )
        children = item.values() if isinstance(item, dict) else item
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
