"""A tiny HTTP client for the service on the guest's loopback (standard library only).

Each call opens its own connection, so threads need no sharing, and returns either
(status, JSON body) or a short string naming the transport error: a lost answer is
counted, never raised.
"""

from __future__ import annotations

import http.client
import json
from typing import Any

HOST = "127.0.0.1"
PORT = 8080


def call(method: str, path: str, body: Any = None, timeout: float = 120) -> tuple[int, Any] | str:
    """One request: (status, JSON body), or the error's name when none came back."""
    connection = http.client.HTTPConnection(HOST, PORT, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        connection.request(method, path, data, headers)
        response = connection.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, {"kind": "not_json", "raw": raw[:200].decode("latin-1")}
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__
    finally:
        connection.close()
