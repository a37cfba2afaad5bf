"""WSGI middleware that refuses an oversized request body before anything reads it.

Flask's MAX_CONTENT_LENGTH is not enough under functions-framework: its
after-request hook reads the whole body again, so the limit must hold below
Flask. A declared Content-Length over the limit is refused without reading a
byte; a chunked body is read up to the limit plus one byte, then refused.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class BodyLimit:
    """Wrap a WSGI app so that bodies over ``max_bytes`` get a JSON 413."""

    def __init__(self, app: WSGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _refuse(self, start_response: Callable[..., Any]) -> list[bytes]:
        body = json.dumps(
            {
                "error": f"The request body is larger than the limit of {self.max_bytes} bytes.",
                "kind": "body_too_large",
            }
        ).encode()
        start_response(
            "413 Request Entity Too Large",
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
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            # Chunked wins over any Content-Length (RFC 9112, 6.3).
            data = environ["wsgi.input"].read(self.max_bytes + 1)
            if len(data) > self.max_bytes:
                return self._refuse(start_response)
            environ["wsgi.input"] = io.BytesIO(data)
            environ["CONTENT_LENGTH"] = str(len(data))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            environ["wsgi.input_terminated"] = False
            return self.app(environ, start_response)
        declared = (environ.get("CONTENT_LENGTH") or "").strip()
        if declared.isdigit() and int(declared) > self.max_bytes:
            return self._refuse(start_response)
        return self.app(environ, start_response)
