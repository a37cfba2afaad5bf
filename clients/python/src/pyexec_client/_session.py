"""What Client and AsyncClient share: the service's URL, credentials and timeout, and
the reading of one attempt's outcome as a success or an error.

Only the sending (and the waiting between retries) differs between the two clients;
everything that decides lives here and in _retry, so both behave the same.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx

from pyexec_client._answers import error_for, parse_body
from pyexec_client._auth import auth_headers, id_tokens_for, is_cloud_run
from pyexec_client._retry import RetryPolicy
from pyexec_client._tokens import TokenProvider
from pyexec_client._version import __version__
from pyexec_client.errors import (
    AuthError,
    ClientTimeoutError,
    ConnectionFailedError,
    PyexecError,
    ServerError,
)

T = TypeVar("T")

# A connection that takes longer than this to open is as good as refused (and is
# retried); the answer itself may take the whole timeout.
CONNECT_TIMEOUT_SECONDS = 10.0


def base_url(url: str) -> str:
    """``url`` checked to be http(s) with a host, without a trailing slash."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the service URL must be http:// or https:// with a host, not {url!r}")
    if parts.query or parts.fragment:
        raise ValueError("the service URL cannot have a query or a fragment")
    return url.rstrip("/")


def display_url(url: str) -> str:
    """``url`` without user info, for messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class Session:
    """One client's settings and the reading of answers (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None,
        google_auth: bool | TokenProvider | None,
        timeout: float,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        if api_key is not None and not api_key.strip():
            raise ValueError("api_key is empty")
        self.url = base_url(url)
        self.shown_url = display_url(self.url)
        self.timeout = float(timeout)
        self.api_key = api_key
        self.tokens = id_tokens_for(google_auth, self.url)
        self.retry = RetryPolicy()

    def __repr__(self) -> str:
        return f"{self.shown_url!r}, timeout={self.timeout}"

    @property
    def fetches_token(self) -> bool:
        """Whether ``headers`` would fetch a token now (a subprocess or an HTTP call)."""
        return self.tokens.needs_fetch()

    def headers(self) -> dict[str, str]:
        """The headers of the next attempt; may fetch an ID token (AuthError if required
        and none can be had)."""
        headers = {"User-Agent": f"pyexec-client/{__version__}", "Accept": "application/json"}
        headers.update(auth_headers(self.api_key, self.tokens.get()))
        return headers

    def attempt_timeout(self, remaining: float) -> httpx.Timeout:
        """httpx's timeouts for an attempt with ``remaining`` seconds of the budget."""
        remaining = max(remaining, 0.001)
        return httpx.Timeout(remaining, connect=min(remaining, CONNECT_TIMEOUT_SECONDS))

    def transport_error(self, exc: httpx.TransportError) -> PyexecError:
        """The error for an attempt that got no answer."""
        where = self.shown_url
        if isinstance(exc, httpx.ConnectTimeout):
            return ConnectionFailedError(
                f"No connection to {where} could be opened in time. Is the URL right, "
                "and is the service up?",
                request_sent=False,
            )
        if isinstance(exc, httpx.ConnectError):
            return ConnectionFailedError(
                f"Cannot connect to {where} ({exc}). Is the service running there, and is "
                "the URL right?",
                request_sent=False,
            )
        if isinstance(exc, httpx.TimeoutException):
            return ClientTimeoutError(
                f"No answer from {where} within the client's timeout ({self.timeout:g} s); "
                "the script may have run. Give the client a timeout above the script's "
                "timeout_seconds."
            )
        return ConnectionFailedError(
            f"The connection to {where} broke before the answer came ({exc or type(exc)}); "
            "the script may have run.",
            request_sent=True,
        )

    def answer_error(self, response: httpx.Response, *, sent_token: bool) -> PyexecError | None:
        """The error for a non-2xx answer, or None for a success."""
        if response.is_success:
            return None
        error = error_for(
            response.status_code,
            parse_body(response.content),
            url=self.shown_url,
            retry_after=response.headers.get("Retry-After"),
            request_id=response.headers.get("X-Request-Id"),
        )
        if isinstance(error, AuthError) and not sent_token and is_cloud_run(self.url):
            error.message += f" No Google ID token was sent: {self.tokens.why_none}."
        return error

    def wait_or_raise(self, error: PyexecError, retries: int, deadline: float) -> float:
        """Seconds to wait before the next attempt after ``error``; raises ``error``
        (with its attempt count) when the retry policy gives up."""
        delay = self.retry.delay(error, retries, deadline - time.monotonic())
        if delay is None:
            error.attempts = retries + 1
            raise error
        return delay

    def parse_success(
        self, response: httpx.Response, parse: Callable[[Mapping[str, Any]], T]
    ) -> T:
        """A 2xx answer's body through ``parse``; ServerError if it is not pyexec's."""
        body = parse_body(response.content)
        problem: Exception | None = None
        if body is not None:
            try:
                return parse(body)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                problem = exc
        raise ServerError(
            f"{self.shown_url} answered {response.status_code} with something that is not "
            f"pyexec's answer ({problem or 'not a JSON object'}); is the URL the service's?",
            status=response.status_code,
            body=body,
        ) from problem


def sent_token(headers: Mapping[str, str]) -> bool:
    """Whether ``headers`` carry an ID token."""
    return "X-Serverless-Authorization" in headers or "Authorization" in headers
