"""What the service answers, as typed records, and their parsing from JSON bodies.

The shapes are the service's schemas (schemas/success.schema.json, run.schema.json,
health.schema.json, runtime.schema.json). Parsing is strict about the fields the
client relies on, so that an answer from something that is not pyexec fails loudly
instead of half-filling a record; the caller turns that failure into a ServerError.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Usage:
    """What the run used, counted from the hand-over of the script to its jail."""

    wall_time_ms: float
    cpu_time_ms: float
    peak_memory_bytes: int


@dataclass(frozen=True)
class Limits:
    """The limits the run had: the request's own, or the server's defaults."""

    timeout_seconds: float
    cpu_seconds: int
    memory_mb: int


@dataclass(frozen=True)
class OutputFile:
    """A file of the script's working directory that matched ``output_files``.

    ``content`` holds the decoded bytes; it is None when the service left the content
    out, and ``omitted`` then says why (``file_too_large``, ``symlink``, ...).
    """

    path: str
    size: int
    mime_type: str | None
    content: bytes | None = field(repr=False)
    omitted: str | None = None


@dataclass(frozen=True, kw_only=True)
class RunResult:
    """A run of code without ``main()`` (``run_code``): what it printed and left behind."""

    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    usage: Usage
    limits: Limits
    files: tuple[OutputFile, ...] = ()
    # None when the request had no output_files; False when the run was killed first.
    files_collected: bool | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, kw_only=True)
class ExecuteResult(RunResult):
    """A successful ``execute``: what ``main()`` returned (plain JSON) and the run."""

    result: Any = None


@dataclass(frozen=True)
class Health:
    """``GET /healthz`` when the sandbox works: how jails are limited, warm jails ready."""

    status: str
    cgroups: str
    pool: Mapping[str, int]


@dataclass(frozen=True)
class Package:
    """A distribution installed in the jail's environment."""

    name: str
    version: str


@dataclass(frozen=True)
class LimitRange:
    """One limit a request can set: the server's default and the most it may ask for."""

    default: float
    maximum: float


@dataclass(frozen=True)
class RuntimeLimits:
    """The limits a request can set, each as the request field of the same name."""

    timeout_seconds: LimitRange
    cpu_seconds: LimitRange
    memory_mb: LimitRange


@dataclass(frozen=True, kw_only=True)
class Runtime:
    """``GET /runtime``: what a script gets. ``python`` and ``packages`` are the jail's
    own (read in a real jail at start-up), ``preimported`` the modules imported before
    a script arrives, ``limits`` what each limit's request field may ask for."""

    python: str
    packages: tuple[Package, ...]
    preimported: tuple[str, ...]
    limits: RuntimeLimits
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def version_of(self, name: str) -> str | None:
        """The installed version of distribution ``name`` (``scikit_learn`` finds
        ``scikit-learn``: names compare as pip compares them), or None."""
        wanted = _normalized(name)
        for package in self.packages:
            if _normalized(package.name) == wanted:
                return package.version
        return None


def _normalized(name: str) -> str:
    """A distribution name as PEP 503 compares names."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_usage(body: Mapping[str, Any]) -> Usage:
    """The ``usage`` object of a run answer."""
    usage = body["usage"]
    return Usage(
        float(usage["wall_time_ms"]), float(usage["cpu_time_ms"]), int(usage["peak_memory_bytes"])
    )


def parse_limits(body: Mapping[str, Any]) -> Limits:
    """The ``limits`` object of a run answer."""
    limits = body["limits"]
    return Limits(
        float(limits["timeout_seconds"]), int(limits["cpu_seconds"]), int(limits["memory_mb"])
    )


def parse_files(body: Mapping[str, Any]) -> tuple[OutputFile, ...]:
    """The ``files`` of a run answer, their content decoded (absent: no files)."""
    return tuple(_parse_file(entry) for entry in body.get("files") or ())


def _parse_file(entry: Mapping[str, Any]) -> OutputFile:
    if "omitted" in entry:
        return OutputFile(
            str(entry["path"]), int(entry["size"]), None, None, str(entry["omitted"])
        )
    encoding = entry["encoding"]
    text = str(entry["content"])
    if encoding == "utf-8":
        content = text.encode("utf-8")
    elif encoding == "base64":
        try:
            content = base64.b64decode(text, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"file {entry['path']!r} is not valid base64") from exc
    else:
        raise ValueError(f"file {entry['path']!r} has an unknown encoding {encoding!r}")
    return OutputFile(str(entry["path"]), int(entry["size"]), str(entry["mime_type"]), content)


def parse_run(body: Mapping[str, Any]) -> RunResult:
    """A run answer without its result (``run_code``)."""
    return RunResult(**_run_fields(body))


def parse_execute(body: Mapping[str, Any]) -> ExecuteResult:
    """A 200 answer of ``POST /execute``."""
    if "result" not in body:
        raise ValueError("the answer has no result")
    return ExecuteResult(result=body["result"], **_run_fields(body))


def _run_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    collected = body.get("files_collected")
    return {
        "stdout": str(body["stdout"]),
        "stderr": str(body["stderr"]),
        "stdout_truncated": bool(body["stdout_truncated"]),
        "stderr_truncated": bool(body["stderr_truncated"]),
        "usage": parse_usage(body),
        "limits": parse_limits(body),
        "files": parse_files(body),
        "files_collected": None if collected is None else bool(collected),
        "raw": body,
    }


def parse_health(body: Mapping[str, Any]) -> Health:
    """A 200 answer of ``GET /healthz``."""
    pool = {str(name): int(count) for name, count in body["pool"].items()}
    return Health(str(body["status"]), str(body["cgroups"]), pool)


def parse_runtime(body: Mapping[str, Any]) -> Runtime:
    """A 200 answer of ``GET /runtime``."""
    limits = body["limits"]
    return Runtime(
        python=_string(body["python"], "python"),
        packages=tuple(
            Package(_string(entry["name"], "name"), _string(entry["version"], "version"))
            for entry in _array(body["packages"], "packages")
        ),
        preimported=tuple(
            _string(name, "preimported") for name in _array(body["preimported"], "preimported")
        ),
        limits=RuntimeLimits(
            _limit_range(limits["timeout_seconds"]),
            _limit_range(limits["cpu_seconds"]),
            _limit_range(limits["memory_mb"]),
        ),
        raw=body,
    )


def _limit_range(entry: Mapping[str, Any]) -> LimitRange:
    return LimitRange(_number(entry["default"], "default"), _number(entry["maximum"], "maximum"))


def _string(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} is {type(value).__name__}, not a string")
    return value


def _array(value: object, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"{name} is {type(value).__name__}, not an array")
    return value


def _number(value: object, name: str) -> float:
    """A JSON number as it came (an int stays an int); booleans are not numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} is {type(value).__name__}, not a number")
    return value
