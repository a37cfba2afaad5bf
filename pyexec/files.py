"""Files in and out of a run, on the service's side: the rules for paths, the request's
``files`` decoded, and the files a jail returned checked and made into answer entries.

Paths are refused, never normalised: what the caller sent is what the script sees,
so a path that would need cleaning up is an error naming it. The runner writes and
collects the files inside the jail (pyexec/runner.py); the service never resolves a
jail path on the host. What comes back is re-checked here as if forged (the script
runs in the runner's interpreter and can write on its channel): valid paths in
order, the caps, sizes that add up to the bytes that came.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyexec.errors import RequestError

MAX_PATH_BYTES = 1024
MAX_COMPONENT_BYTES = 255
MAX_DEPTH = 16
MAX_PATTERNS = 16
MAX_PATTERN_CHARS = 256
OMITTED = frozenset(
    {"file_too_large", "total_too_large", "too_many_files", "not_regular", "symlink"}
)
# Listed entries a jail may return at all: the working directory's inode limit
# (nsjail.cfg) bounds what a script can create; this bounds what the service reads.
MAX_LISTED = 2048

# The MIME type of a returned file, by its extension (lower-cased); anything else is
# application/octet-stream. Fixed here so that the answer never depends on the host.
MIME_TYPES = {
    "bmp": "image/bmp",
    "csv": "text/csv",
    "gif": "image/gif",
    "htm": "text/html",
    "html": "text/html",
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "json": "application/json",
    "jsonl": "application/jsonl",
    "md": "text/markdown",
    "parquet": "application/vnd.apache.parquet",
    "pdf": "application/pdf",
    "png": "image/png",
    "py": "text/x-python",
    "svg": "image/svg+xml",
    "tsv": "text/tab-separated-values",
    "txt": "text/plain",
    "webp": "image/webp",
    "xml": "application/xml",
    "yaml": "application/yaml",
    "yml": "application/yaml",
    "zip": "application/zip",
}
DEFAULT_MIME_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class FileCaps:
    """The caps on files returned by one run (PYEXEC_MAX_OUTPUT_FILE* settings)."""

    max_files: int
    max_file_bytes: int
    max_total_bytes: int


def path_problem(path: str) -> str | None:
    """Why ``path`` is not acceptable as a file's path in the working directory, or None."""
    try:
        raw = path.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if not 1 <= len(raw) <= MAX_PATH_BYTES:
        return f"must be 1 to {MAX_PATH_BYTES} bytes long"
    if "\x00" in path or "\\" in path:
        return "must not contain a NUL byte or a backslash"
    if path.startswith("/") or path.endswith("/"):
        return "must be relative to the working directory, without a leading or trailing /"
    parts = path.split("/")
    if len(parts) > MAX_DEPTH:
        return f"has more than {MAX_DEPTH} levels"
    for part in parts:
        if part in ("", ".", ".."):
            return "must not have an empty, '.' or '..' component"
        if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
            return f"has a component over {MAX_COMPONENT_BYTES} bytes"
    return None


def _file_error(index: int, path: Any, message: str) -> RequestError:
    details: dict[str, Any] = {"field": "files", "index": index}
    if isinstance(path, str):
        details["path"] = path
    return RequestError(message, **details)


def decode_files(
    files: Sequence[dict[str, Any]], max_file_bytes: int, max_total_bytes: int
) -> list[tuple[str, bytes]]:
    """The request's ``files`` (already schema-valid in shape) as (path, bytes), or
    RequestError naming the file by index and path."""
    decoded: list[tuple[str, bytes]] = []
    total = 0
    for index, item in enumerate(files):
        path = item["path"]
        problem = path_problem(path)
        if problem is not None:
            raise _file_error(index, path, f'files[{index}].path "{path[:200]}" {problem}.')
        data = _content(item, index)
        if len(data) > max_file_bytes:
            setting = (
                "PYEXEC_MAX_FILES_BYTES"
                if max_file_bytes == max_total_bytes
                else "PYEXEC_FILE_SIZE_MB"
            )
            raise _file_error(
                index,
                path,
                f'files[{index}] ("{path}") is {len(data)} bytes; the limit per file is '
                f"{max_file_bytes} bytes ({setting}).",
            )
        total += len(data)
        if total > max_total_bytes:
            raise _file_error(
                index,
                path,
                f"The files add up to more than {max_total_bytes} bytes at files[{index}] "
                f'("{path}"); raise PYEXEC_MAX_FILES_BYTES or send less.',
            )
        decoded.append((path, data))
    _check_layout([path for path, _ in decoded])
    return decoded


def _content(item: dict[str, Any], index: int) -> bytes:
    """A file's bytes from its content and encoding."""
    path = item["path"]
    content: str = item["content"]
    if item.get("encoding", "utf-8") == "utf-8":
        try:
            return content.encode("utf-8")
        except UnicodeEncodeError:
            raise _file_error(
                index, path, f"files[{index}].content holds a lone surrogate, not UTF-8 text."
            ) from None
    if len(content) % 4:
        raise _file_error(
            index,
            path,
            f"files[{index}].content is not padded base64 (its length is not a multiple of 4).",
        )
    try:
        data = base64.b64decode(content, validate=True)
        # Canonical only: unused bits after the last byte must be zero, so that one
        # file has one encoding ("QR==" would decode to the same byte as "QQ==").
        if base64.b64encode(data) != content.encode("ascii"):
            raise ValueError("not canonical")
        return data
    except (binascii.Error, ValueError):
        raise _file_error(
            index,
            path,
            f"files[{index}].content is not standard base64 (RFC 4648: A-Z a-z 0-9 + /, "
            "padded with =).",
        ) from None


def _check_layout(paths: list[str]) -> None:
    """Unique paths, and none a directory of another (a file cannot be both)."""
    seen: dict[str, int] = {}
    for index, path in enumerate(paths):
        if path in seen:
            raise _file_error(
                index, path, f'files[{index}].path "{path}" is also files[{seen[path]}].path.'
            )
        seen[path] = index
    for index, path in enumerate(paths):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            if prefix in seen:
                raise _file_error(
                    index,
                    path,
                    f'files[{index}].path "{path}" is inside files[{seen[prefix]}].path '
                    f'"{prefix}", which is a file.',
                )


def pattern_problem(pattern: str) -> str | None:
    """Why an ``output_files`` pattern cannot match anything, or None."""
    if pattern.startswith("/"):
        return "must be relative to the working directory"
    if any(part in ("", ".", "..") for part in pattern.split("/")):
        return "must not have an empty, '.' or '..' component"
    if "\x00" in pattern or "\\" in pattern:
        return "must not contain a NUL byte or a backslash"
    return None


def mime_type(path: str) -> str:
    """The MIME type of a returned file, from the fixed table by its extension."""
    name = path.rsplit("/", 1)[-1]
    if "." not in name.lstrip("."):
        return DEFAULT_MIME_TYPE
    return MIME_TYPES.get(name.rsplit(".", 1)[1].lower(), DEFAULT_MIME_TYPE)


def _text_or_base64(data: bytes) -> tuple[str, str]:
    """(encoding, content): UTF-8 text when the bytes are strict UTF-8 without NUL."""
    if b"\x00" not in data:
        try:
            return "utf-8", data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return "base64", base64.b64encode(data).decode("ascii")


def answer_entries(listing: Any, blob: bytes, caps: FileCaps) -> list[dict[str, Any]] | None:
    """The answer's ``files`` from a jail's listing and the bytes after its report, or
    None when they are not what the runner writes (a forged report)."""
    if not isinstance(listing, list) or len(listing) > MAX_LISTED:
        return None
    entries: list[dict[str, Any]] = []
    offset = 0
    sent = 0
    previous = ""
    for item in listing:
        if not _is_listed(item) or item["path"] <= previous:
            return None
        previous = item["path"]
        size = item["size"]
        if "omitted" in item:
            entries.append({"path": item["path"], "size": size, "omitted": item["omitted"]})
            continue
        sent += 1
        if sent > caps.max_files or size > caps.max_file_bytes:
            return None
        data = blob[offset : offset + size]
        offset += size
        if len(data) != size or offset > caps.max_total_bytes:
            return None
        encoding, content = _text_or_base64(data)
        entries.append(
            {
                "path": item["path"],
                "size": size,
                "mime_type": mime_type(item["path"]),
                "encoding": encoding,
                "content": content,
            }
        )
    if offset != len(blob):
        return None
    return entries


def _is_listed(item: Any) -> bool:
    """One listing entry as the runner writes it."""
    if not isinstance(item, dict) or not item.keys() <= {"path", "size", "omitted"}:
        return False
    path, size = item.get("path"), item.get("size")
    return (
        isinstance(path, str)
        and path_problem(path) is None
        and type(size) is int
        and 0 <= size < 2**53
        and _is_omitted_reason(item.get("omitted", "file_too_large"))
    )


def _is_omitted_reason(value: Any) -> bool:
    return isinstance(value, str) and value in OMITTED
