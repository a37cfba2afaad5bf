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
from collections.abc import Callable, Iterable
from typing import Any

from pyexec.answers import to_wsgi
from pyexec.errors import BodyTooLarge, RequestTimeout

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class BodyLimit:
    """Wrap a WSGI app so that bodies over ``max_bytes`` get a JSON 413, and bodies
    that stall for ``read_timeout`` seconds a JSON 408 (answers from pyexec.answers)."""

    def __init__(self, app: WSGIApp, max_bytes: int, read_timeout: float = 10.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout

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
                return self.app(environ, start_response)
            if len(declared) > 18 or int(declared) > self.max_bytes:
                return to_wsgi(self._too_large(), start_response)
        wanted = self.max_bytes + 1 if chunked else int(declared)
        sock = environ.get("gunicorn.socket")
        try:
            if sock is not None:
                sock.settimeout(self.read_timeout)
            data = environ["wsgi.input"].read(wanted)
        except TimeoutError:
            timeout = RequestTimeout(
                f"The request body did not arrive within {self.read_timeout:g} s."
            )
            return to_wsgi(timeout, start_response)
        finally:
            if sock is not None:
                sock.settimeout(None)
        if len(data) > self.max_bytes:
            return to_wsgi(self._too_large(), start_response)
        environ["wsgi.input"] = io.BytesIO(data)
        environ["CONTENT_LENGTH"] = str(len(data))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = False
        return self.app(environ, start_response)
