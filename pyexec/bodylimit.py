"""WSGI middleware that reads the request body itself, bounded in size and time.

Flask's MAX_CONTENT_LENGTH is not enough under functions-framework: its
after-request hook reads the whole body again, so the limit must hold below
Flask. A declared Content-Length over the limit is refused (413) without reading
a byte; a chunked body is read up to the limit plus one byte, then refused. And a
client that stops sending mid-body must not hold a server thread: under gunicorn
the socket gets a read timeout while the body is read here (408 when it expires).
The app then reads the body from memory.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class BodyLimit:
    """Wrap a WSGI app so that bodies over ``max_bytes`` get a JSON 413."""

    def __init__(self, app: WSGIApp, max_bytes: int, read_timeout: float = 10.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout

    def _refuse(self, start_response: Callable[..., Any]) -> list[bytes]:
        return self._error(
            start_response,
            "413 Request Entity Too Large",
            f"The request body is larger than the limit of {self.max_bytes} bytes.",
            "body_too_large",
        )

    def _error(
        self, start_response: Callable[..., Any], status: str, message: str, kind: str
    ) -> list[bytes]:
        body = json.dumps({"error": message, "kind": kind}).encode()
        start_response(
            status,
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
            ],
        )
        return [body]

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        declared = (environ.get("CONTENT_LENGTH") or "").strip()
        if not chunked:  # chunked wins over any Content-Length (RFC 9112, 6.3)
            if not declared.isdigit() or int(declared) == 0:
                return self.app(environ, start_response)
            if int(declared) > self.max_bytes:
                return self._refuse(start_response)
        wanted = self.max_bytes + 1 if chunked else int(declared)
        sock = environ.get("gunicorn.socket")
        try:
            if sock is not None:
                sock.settimeout(self.read_timeout)
            data = environ["wsgi.input"].read(wanted)
        except TimeoutError:
            return self._error(
                start_response,
                "408 Request Timeout",
                f"The request body did not arrive within {self.read_timeout:g} s.",
                "request_timeout",
            )
        finally:
            if sock is not None:
                sock.settimeout(None)
        if len(data) > self.max_bytes:
            return self._refuse(start_response)
        environ["wsgi.input"] = io.BytesIO(data)
        environ["CONTENT_LENGTH"] = str(len(data))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = False
        return self.app(environ, start_response)
