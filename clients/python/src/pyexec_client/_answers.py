"""An HTTP answer that is not a success, as one of the client's errors.

Every kind of schemas/error.schema.json has one row in KIND_ERRORS (a test keeps the
two equal). A kind the client does not know yet, or an answer that is not pyexec's
(a proxy's HTML, Cloud Run's own 403), is classified by its status instead.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any

from pyexec_client.errors import (
    AuthError,
    OverloadedError,
    PyexecError,
    RequestError,
    ScriptError,
    ServerError,
    UnavailableError,
)

_REQUEST_KINDS = (
    "bad_request",
    "invalid_json",
    "unsupported_media_type",
    "body_too_large",
    "request_timeout",
    "uri_too_long",
    "headers_too_large",
    "expectation_failed",
    "unsupported_transfer_coding",
)
_SCRIPT_KINDS = (
    "syntax_error",
    "exception",
    "no_main",
    "main_not_callable",
    "main_async",
    "main_signature",
    "invalid_result",
    "result_too_large",
    # The whole answer did not fit what the service holds for one: the script ran, the
    # run is lost, and only the script (returning less) can change that.
    "answer_too_large",
    "exited",
    "crashed",
    "timeout",
    "cpu_limit",
    "memory_limit",
    "output_limit",
    "file_size_limit",
)

KIND_ERRORS: Mapping[str, type[PyexecError]] = {
    **dict.fromkeys(_REQUEST_KINDS, RequestError),
    **dict.fromkeys(_SCRIPT_KINDS, ScriptError),
    "unauthorized": AuthError,
    # The HTTP server refused the connection (PROXY protocol or TLS): credentials or
    # network policy, not the request's content.
    "forbidden": AuthError,
    "overloaded": OverloadedError,
    "shutting_down": OverloadedError,
    "starting": UnavailableError,
    "sandbox_unavailable": UnavailableError,
    "not_found": ServerError,
    "method_not_allowed": ServerError,
    "internal_error": ServerError,
}

# The kinds the client retries (with connection failures): nothing ran, and another
# instance, or the same one a second later, may take the request.
RETRIED_KINDS = frozenset({"overloaded", "shutting_down"})

RETRY_AFTER_CAP_SECONDS = 10.0


def parse_body(content: bytes) -> Mapping[str, Any] | None:
    """The answer's JSON object, or None when it is not one (not pyexec's answer)."""
    try:
        body = json.loads(content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), capped at 10 s."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_SECONDS)


def error_class(
    status: int, kind: str | None, body: Mapping[str, Any] | None
) -> type[PyexecError]:
    """The error class for an answer: by kind when the client knows it, else by status."""
    if kind is not None and kind in KIND_ERRORS:
        return KIND_ERRORS[kind]
    if status == 400:
        # The schema's own distinction: script failures carry the run's usage.
        return ScriptError if body is not None and "usage" in body else RequestError
    if status in (401, 403):
        return AuthError
    if status in (404, 405) or (status >= 500 and status not in (501, 503)):
        return ServerError
    if status == 429:
        return OverloadedError
    if status == 503:
        return UnavailableError
    if 400 <= status < 500 or status == 501:
        return RequestError
    return ServerError


def error_for(
    status: int,
    body: Mapping[str, Any] | None,
    *,
    url: str,
    retry_after: str | None = None,
    request_id: str | None = None,
) -> PyexecError:
    """The error for a non-2xx answer (``body`` None when it was not JSON) from ``url``."""
    kind = body.get("kind") if body is not None else None
    kind = kind if isinstance(kind, str) else None
    cls = error_class(status, kind, body)
    message = _message(cls, status, kind, body, url, request_id)
    if cls is ScriptError and body is not None and kind is not None:
        return ScriptError(message, status=status, kind=kind, body=body)
    if cls is ScriptError:
        cls = RequestError
    if issubclass(cls, (OverloadedError, UnavailableError)):
        return cls(
            message,
            status=status,
            kind=kind,
            body=body,
            retry_after=parse_retry_after(retry_after),
        )
    return cls(message, status=status, kind=kind, body=body)


def _message(
    cls: type[PyexecError],
    status: int,
    kind: str | None,
    body: Mapping[str, Any] | None,
    url: str,
    request_id: str | None,
) -> str:
    said = body.get("error") if body is not None else None
    what = f"{status} {kind}" if kind else f"{status}, not a pyexec answer"
    if status in (404, 405) and cls is ServerError:
        return (
            f"{url} answered {what}: wrong URL? Give the service's base URL (the one "
            "whose /healthz answers), not an endpoint's."
        )
    if cls is ServerError:
        reference = f" (X-Request-Id {request_id})" if request_id else ""
        return f"{said or 'The service failed'} [{what} from {url}]{reference}"
    if cls is AuthError and not isinstance(said, str):
        return (
            f"{url} refused the request ({status}): send an API key the service accepts, "
            "or a Google ID token for a Cloud Run service that requires one."
        )
    if isinstance(said, str) and said:
        return said
    return f"{url} answered {what}."
