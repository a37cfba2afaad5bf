"""Every failure the client reports: one base, one class per thing a caller does next.

The classes follow what a caller can do about a failure, not the HTTP status: fix the
script (ScriptError), fix the request (RequestError), fix credentials (AuthError),
come back later (OverloadedError, UnavailableError), check the URL or report a bug
(ServerError), check the network (ConnectionFailedError, ClientTimeoutError).
``_answers.error_for`` maps each kind of schemas/error.schema.json to one of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyexec_client._results import (
    Limits,
    OutputFile,
    Usage,
    parse_files,
    parse_limits,
    parse_usage,
)


class PyexecError(Exception):
    """Base of every error the client raises.

    ``status`` and ``kind`` are the service's (None when there was no answer, or
    when it was not pyexec's); ``body`` is the answer's JSON body (empty without one);
    ``attempts`` counts the requests sent, retries included.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        kind: str | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.kind = kind
        self.body: Mapping[str, Any] = body if body is not None else {}
        self.attempts = 1

    def __str__(self) -> str:
        if self.attempts > 1:
            return f"{self.message} (gave up after {self.attempts} attempts)"
        return self.message


class ScriptError(PyexecError):
    """The script ran and failed: an exception, a limit, no ``main``, a bad result, ...

    Carries what the script printed before it failed, the traceback (``exception``
    kind), and the files collected when ``main`` raised (``files_collected``).
    ``module`` is the module a ModuleNotFoundError could not import (``exception``
    kind; GET /runtime lists what the jail has). ``field`` and ``maximum`` are, for
    ``timeout``, ``cpu_limit`` and ``memory_limit``, the request field that raises
    that limit and the server's maximum for it. Each is None when the answer has none.
    """

    def __init__(self, message: str, *, status: int, kind: str, body: Mapping[str, Any]) -> None:
        super().__init__(message, status=status, kind=kind, body=body)
        self.module: str | None = _text(body, "module")
        self.field: str | None = _text(body, "field")
        self.maximum: float | None = _number(body, "maximum")
        self.traceback: str | None = body.get("traceback_text")
        self.stdout: str = str(body.get("stdout", ""))
        self.stderr: str = str(body.get("stderr", ""))
        self.stdout_truncated = bool(body.get("stdout_truncated", False))
        self.stderr_truncated = bool(body.get("stderr_truncated", False))
        self.files: tuple[OutputFile, ...] = parse_files(body)
        collected = body.get("files_collected")
        self.files_collected: bool | None = None if collected is None else bool(collected)
        self.usage: Usage | None = parse_usage(body) if "usage" in body else None
        self.limits: Limits | None = parse_limits(body) if "limits" in body else None


class RequestError(PyexecError):
    """The service refused the request itself (400 ``bad_request``, 408, 413, 415, ...).

    ``field`` and ``maximum`` name the request field and the server's limit when the
    service says which, ``index`` which entry of ``files`` or ``output_files``; a
    request the client could not even encode has status None.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        kind: str | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, status=status, kind=kind, body=body)
        self.field: str | None = _text(self.body, "field")
        self.maximum: float | None = _number(self.body, "maximum")
        index = _number(self.body, "index")
        self.index: int | None = index if isinstance(index, int) else None


class AuthError(PyexecError):
    """No valid API key (401), refused by Cloud Run's IAM (401/403), or no ID token
    could be had although ``google_auth=True`` requires one."""


class _RetryAfter(PyexecError):
    """An answer that says when to come back (``Retry-After``, seconds or None)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        kind: str | None = None,
        body: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, kind=kind, body=body)
        self.retry_after = retry_after


class OverloadedError(_RetryAfter):
    """The service is at capacity (503 ``overloaded``) or shutting down (503
    ``shutting_down``), still so after the client's retries; or a proxy's 429."""


class UnavailableError(_RetryAfter):
    """The service cannot run scripts: 503 ``sandbox_unavailable`` (the jail cannot
    start on that instance) or ``starting`` (its sandbox self-test still runs). Never
    retried by the client: the first needs an operator, the second seconds to minutes."""


class ServerError(PyexecError):
    """A fault of the service (500), an answer that is not pyexec's, or 404/405: the
    URL points at something else than the service's base URL."""


class ConnectionFailedError(PyexecError):
    """No answer came: the service could not be reached, or the connection broke.

    ``request_sent`` is False when the request never left (refused, DNS, connect
    timeout: retried), True when the connection broke after it was sent (the script
    may have run: never retried).
    """

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class ClientTimeoutError(PyexecError):
    """No answer within the client's own ``timeout`` (not the script's
    ``timeout_seconds``). Never retried: the script may have run."""


def _text(body: Mapping[str, Any], name: str) -> str | None:
    """The answer's string field ``name``; None when absent or not a string."""
    value = body.get(name)
    return value if isinstance(value, str) else None


def _number(body: Mapping[str, Any], name: str) -> float | None:
    """The answer's number field ``name`` as it came (an int stays an int); None when
    absent or not a number (a boolean is not)."""
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value
