"""WSGI middleware that reads the request body itself, bounded in size and time, and
bounds the time its answer may take to be sent.

Flask's MAX_CONTENT_LENGTH is not enough under functions-framework: its
after-request hook reads the whole body again, so the limit must hold below
Flask. A declared Content-Length over the limit is refused (413) without reading
a byte; a chunked body is read up to the limit plus one byte, then refused. The app
then reads the body from memory.

No client may hold a server thread for long, under gunicorn (which hands the socket
over as ``gunicorn.socket``): the whole body must arrive within ``read_timeout``
plus its size at ``min_rate`` bytes per second, else 408 and the connection closes;
the answer must be taken within ``SEND_BASE_SECONDS`` plus its size at the same rate,
else the connection is shut. A deadline shuts the socket down (pyexec.deadlines): a
per-``recv`` timeout would not bound a client that drips one byte at a time. Each
expiry writes one log line with the bytes and seconds, so operators see attacks.

Memory: a body reserves its length in the in-flight budget (pyexec/inflight.py)
before it is read, an answer its length before it is sent; both are held until the
server is done with the answer. When either does not fit: 503 ``overloaded``.

Where API keys are configured, a request that carries a body without a valid key is
refused (401) before anything is reserved or read: otherwise anyone could fill the
budget with bodies declared large and then stalled, and every other request would
get 503 (an adversarial review did it with 72 connections and no key).
"""

from __future__ import annotations

import io
import logging
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pyexec import keys
from pyexec.answers import to_wsgi
from pyexec.deadlines import WATCHDOG, Watch
from pyexec.errors import (
    AnswerTooLarge,
    BodyTooLarge,
    Overloaded,
    RequestTimeout,
    Unauthorized,
)
from pyexec.inflight import InFlight, Reservation

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
SEND_BASE_SECONDS = 10.0
READ_CHUNK_BYTES = 64 * 1024

log = logging.getLogger("pyexec.http")


class BodyLimit:
    """Wrap a WSGI app: bodies over ``max_bytes`` get a JSON 413, bodies too slow a
    JSON 408, bodies and answers that do not fit in ``inflight`` a JSON 503 (answers
    from pyexec.answers), answers too slow a closed connection."""

    def __init__(
        self,
        app: WSGIApp,
        max_bytes: int,
        read_timeout: float = 10.0,
        min_rate: int = 64 * 1024,
        inflight: InFlight | None = None,
        api_keys: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.api_keys = api_keys
        self.read_timeout = read_timeout
        self.min_rate = min_rate
        self.inflight = inflight or InFlight(128 * 1024 * 1024)

    def _too_large(self, size: int) -> BodyTooLarge:
        """The 413 for a body over the limit (``size``: declared, or read so far), and
        a log line: the refusal never reaches the app, whose line every other gets."""
        log.info(
            "request body too large",
            extra={
                "fields": {"kind": "body_too_large", "bytes": size, "limit_bytes": self.max_bytes}
            },
        )
        return BodyTooLarge(
            f"The request body is larger than the limit of {self.max_bytes} bytes."
        )

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        declared = (environ.get("CONTENT_LENGTH") or "").strip()
        # A length is ASCII digits only ("²".isdigit() is true), and few enough for
        # int(); chunked wins over any Content-Length (RFC 9112, 6.3).
        has_length = declared.isascii() and declared.isdigit() and int(declared[:19]) > 0
        if not chunked and not has_length:
            return self._answer(environ, start_response, None)
        if self.api_keys and not keys.key_matches(
            self.api_keys,
            environ.get("HTTP_AUTHORIZATION", ""),
            environ.get("HTTP_X_API_KEY", ""),
        ):
            log.info(
                "request body without a valid API key", extra={"fields": {"kind": "unauthorized"}}
            )
            return to_wsgi(Unauthorized(keys.REFUSAL), start_response)
        if not chunked and (len(declared) > 18 or int(declared) > self.max_bytes):
            return to_wsgi(self._too_large(int(declared[:19])), start_response)
        wanted = self.max_bytes + 1 if chunked else int(declared)
        held = self.inflight.reserve(wanted)
        if held is None:
            return to_wsgi(self._full("request body", wanted), start_response)
        try:
            data = self._read_body(environ, wanted)
        except BaseException:
            held.release()
            raise
        if data is None or len(data) > self.max_bytes:
            held.release()
            refusal = self._too_slow(wanted) if data is None else self._too_large(len(data))
            return to_wsgi(refusal, start_response)
        environ["wsgi.input"] = io.BytesIO(data)
        environ["CONTENT_LENGTH"] = str(len(data))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = False
        return self._answer(environ, start_response, held)

    def _too_slow(self, wanted: int) -> RequestTimeout:
        seconds = self.read_timeout + wanted / self.min_rate
        return RequestTimeout(f"The request body did not arrive within {seconds:.3g} s.")

    def _never_fits(self, size: int) -> AnswerTooLarge:
        """The final refusal of an answer no budget state could hold, logged."""
        largest = self.inflight.large_budget_bytes
        log.warning(
            "answer larger than the in-flight budget can hold",
            extra={"fields": {"kind": "answer_too_large", "bytes": size, "limit_bytes": largest}},
        )
        return AnswerTooLarge(
            f"The answer would be {size} bytes of JSON, more than the {largest} bytes this "
            "service holds for one answer (half of PYEXEC_INFLIGHT_MB); the run's output "
            "is lost. Return less: fewer or smaller files (text full of control "
            "characters grows up to 6 times as JSON), or less printed output."
        )

    def _full(self, what: str, size: int) -> Overloaded:
        """The 503 for bytes that do not fit, and a log line for operators."""
        mib = self.inflight.budget_bytes / (1024 * 1024)
        used, large = self.inflight.used()
        log.warning(
            "in-flight budget full for a %s",
            what,
            extra={
                "fields": {
                    "kind": "overloaded",
                    "bytes": size,
                    "inflight_bytes": used,
                    "inflight_large_bytes": large,
                }
            },
        )
        return Overloaded(
            f"The {what} ({size} bytes) does not fit in the {mib:g} MB the service holds "
            "for its clients at once (PYEXEC_INFLIGHT_MB; bodies and answers over 1 MB "
            "share half of it); retry in a moment."
        )

    def _read_body(self, environ: dict[str, Any], wanted: int) -> bytes | None:
        """Up to ``wanted`` bytes of the body, or None when its deadline passed."""
        sock: socket.socket | None = environ.get("gunicorn.socket")
        seconds = self.read_timeout + wanted / self.min_rate
        watch = WATCHDOG.watch(sock, seconds, socket.SHUT_RD) if sock is not None else None
        started = time.monotonic()
        body = bytearray()
        timed_out = False
        try:
            while len(body) < wanted:
                chunk = environ["wsgi.input"].read(min(READ_CHUNK_BYTES, wanted - len(body)))
                if not chunk:
                    break
                body += chunk
        except TimeoutError:
            timed_out = True  # a socket timeout of the server's own
        except (OSError, ValueError):
            pass  # a body cut short by its deadline (or by the client): judged below
        if (watch is not None and WATCHDOG.cancel(watch)) or timed_out:
            _log_expired("body", len(body), wanted, time.monotonic() - started)
            return None
        return bytes(body)

    def _answer(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        body: Reservation | None,
    ) -> Iterable[bytes]:
        """The app's answer once its bytes are reserved, with a deadline for sending it
        when there is a socket; ``body`` (the body's reservation) is released with it."""
        started: list[Any] = []

        def deferred_start_response(status: str, headers: list[Any], *args: Any) -> Any:
            started[:] = [status, headers, *args]
            return lambda _data: None  # the legacy write(): Flask never calls it

        try:
            result = self.app(environ, deferred_start_response)
        except BaseException:
            if body is not None:
                body.release()
            raise
        length = _content_length(started[1]) if started else 0
        held = self.inflight.reserve(length)
        if held is None:
            _close(result)
            if body is not None:
                body.release()
            if not self.inflight.could_ever_fit(length):
                return to_wsgi(self._never_fits(length), start_response)
            return to_wsgi(self._full("answer", length), start_response)
        start_response(*started)
        sock: socket.socket | None = environ.get("gunicorn.socket")
        seconds = SEND_BASE_SECONDS + length / self.min_rate
        watch = WATCHDOG.watch(sock, seconds, socket.SHUT_RDWR) if sock is not None else None
        return _Sending(result, watch, length, (held, body))


def _content_length(headers: list[tuple[str, str]]) -> int:
    for name, value in headers:
        if name.lower() == "content-length" and value.isascii() and value.isdigit():
            return int(value)
    return 0


def _close(result: Iterable[bytes]) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


class _Sending:
    """The app's answer as the server writes it; the socket is shut down if writing
    takes longer than its deadline (the server then drops the connection). Closing
    it gives the answer's and the body's bytes back to the in-flight budget."""

    def __init__(
        self,
        result: Iterable[bytes],
        watch: Watch | None,
        size: int,
        held: tuple[Reservation, Reservation | None],
    ) -> None:
        self._result = result
        self._watch = watch
        self._size = size
        self._held = held
        self._started = time.monotonic()

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._result)

    def close(self) -> None:
        """The server is done writing (or gave up): stop the clock, log an expiry,
        give the bytes back."""
        try:
            if self._watch is not None and WATCHDOG.cancel(self._watch):
                _log_expired("answer", None, self._size, time.monotonic() - self._started)
            _close(self._result)
        finally:
            for reservation in self._held:
                if reservation is not None:
                    reservation.release()


def _log_expired(what: str, done: int | None, size: int, seconds: float) -> None:
    """One line per expiry, for operators: what, how many bytes, how long."""
    log.warning(
        "%s deadline passed after %.1f s",
        what,
        seconds,
        extra={
            "fields": {
                "kind": "request_timeout" if what == "body" else "answer_timeout",
                "bytes_expected": size,
                **({"bytes_received": done} if done is not None else {}),
                "seconds": round(seconds, 3),
            }
        },
    )
