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
"""

from __future__ import annotations

import io
import logging
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pyexec.answers import to_wsgi
from pyexec.deadlines import WATCHDOG, Watch
from pyexec.errors import BodyTooLarge, RequestTimeout

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
SEND_BASE_SECONDS = 10.0
READ_CHUNK_BYTES = 64 * 1024

log = logging.getLogger("pyexec.http")


class BodyLimit:
    """Wrap a WSGI app: bodies over ``max_bytes`` get a JSON 413, bodies too slow a
    JSON 408 (answers from pyexec.answers), answers too slow a closed connection."""

    def __init__(
        self,
        app: WSGIApp,
        max_bytes: int,
        read_timeout: float = 10.0,
        min_rate: int = 64 * 1024,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout
        self.min_rate = min_rate

    def _too_large(self) -> BodyTooLarge:
        return BodyTooLarge(
            f"The request body is larger than the limit of {self.max_bytes} bytes."
        )

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        declared = (environ.get("CONTENT_LENGTH") or "").strip()
        if not chunked:  # chunked wins over any Content-Length (RFC 9112, 6.3)
            # ASCII digits only ("²".isdigit() is true), and few enough for int().
            if not (declared.isascii() and declared.isdigit()) or int(declared[:19]) == 0:
                return self._answer(environ, start_response)
            if len(declared) > 18 or int(declared) > self.max_bytes:
                return to_wsgi(self._too_large(), start_response)
        wanted = self.max_bytes + 1 if chunked else int(declared)
        data = self._read_body(environ, wanted)
        if data is None:
            seconds = self.read_timeout + wanted / self.min_rate
            timeout = RequestTimeout(f"The request body did not arrive within {seconds:.3g} s.")
            return to_wsgi(timeout, start_response)
        if len(data) > self.max_bytes:
            return to_wsgi(self._too_large(), start_response)
        environ["wsgi.input"] = io.BytesIO(data)
        environ["CONTENT_LENGTH"] = str(len(data))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = False
        return self._answer(environ, start_response)

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
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """The app's answer, with a deadline for sending it when there is a socket."""
        sock: socket.socket | None = environ.get("gunicorn.socket")
        if sock is None:
            return self.app(environ, start_response)
        length = [0]

        def recording_start_response(status: str, headers: list[Any], *args: Any) -> Any:
            for name, value in headers:
                if name.lower() == "content-length" and value.isdigit():
                    length[0] = int(value)
            return start_response(status, headers, *args)

        result = self.app(environ, recording_start_response)
        seconds = SEND_BASE_SECONDS + length[0] / self.min_rate
        return _SendDeadline(result, WATCHDOG.watch(sock, seconds, socket.SHUT_RDWR), length[0])


class _SendDeadline:
    """The app's answer as the server writes it; the socket is shut down if writing
    takes longer than its deadline (the server then drops the connection)."""

    def __init__(self, result: Iterable[bytes], watch: Watch, size: int) -> None:
        self._result = result
        self._watch = watch
        self._size = size
        self._started = time.monotonic()

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._result)

    def close(self) -> None:
        """The server is done writing (or gave up): stop the clock, log an expiry."""
        if WATCHDOG.cancel(self._watch):
            _log_expired("answer", None, self._size, time.monotonic() - self._started)
        close = getattr(self._result, "close", None)
        if close is not None:
            close()


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
