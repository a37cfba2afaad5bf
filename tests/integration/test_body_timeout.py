"""Request bodies that are too slow: 408, and they do not block other requests.
(Bodies that are too large are in test_http.)"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Callable

from tests.live_server import LiveServer
from tests.support import check_schema


def test_a_stalled_body_gets_408_and_does_not_block_others(
    live_server: Callable[..., LiveServer],
) -> None:
    base = live_server(PYEXEC_BODY_TIMEOUT="1").base
    port = int(base.rsplit(":", 1)[1])
    stalled = []
    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(
            b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"scr'
        )
        stalled.append(sock)
    with urllib.request.urlopen(f"{base}/healthz", timeout=5) as answer:
        assert answer.status == 200
    for sock in stalled:
        sock.settimeout(10)
        reply = b""
        while b"}" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        sock.close()
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408")
        answer_body = json.loads(body)
        check_schema(408, answer_body)
        assert answer_body["kind"] == "request_timeout"
