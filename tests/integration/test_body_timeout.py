"""Request bodies that are too slow: 408, and they do not block other requests.
(Bodies that are too large are in test_http.)"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

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


ATTACKERS = 64
HELLO = {"script": "def main():\n    return 'hello'\n"}


def _read_reply(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """What the server sends within ``timeout``, and whether it closed the connection."""
    sock.settimeout(timeout)
    reply = b""
    try:
        while chunk := sock.recv(65536):
            reply += chunk
    except TimeoutError:
        return reply, False
    except ConnectionError:
        return reply, True
    return reply, True


def _still_serving(server: LiveServer) -> None:
    """/healthz within 2 s and a hello script's 200 within 5 s, while under attack."""
    started = time.monotonic()
    assert server.get("/healthz", timeout=2)[0] == 200
    assert time.monotonic() - started < 2
    started = time.monotonic()
    status = 0
    while status != 200 and time.monotonic() - started < 5:
        # 503 overloaded (with Retry-After: 1) is a fair answer while the attackers'
        # own scripts hold the slots; the hello must get its 200 within 5 s.
        status = server.post("/execute", HELLO, timeout=5)[0]
        if status == 503:
            time.sleep(0.2)
    assert status == 200
    assert time.monotonic() - started < 5


def test_dripped_bodies_get_408_at_their_whole_body_deadline_and_others_are_served(
    live_server: Callable[..., LiveServer],
) -> None:
    """64 clients each drip one byte every half second into a 1000-byte body: a
    per-recv timeout would never fire; the whole-body deadline (1 s plus 1000 bytes at
    64 KiB/s) does, and the service answers others throughout."""
    server = live_server(PYEXEC_BODY_TIMEOUT="1")
    head = (
        b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    attackers = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(ATTACKERS)]
    stop = threading.Event()

    def drip() -> None:
        for sock in attackers:
            sock.sendall(head)
        while not stop.wait(0.5):
            for sock in attackers:
                with contextlib.suppress(OSError):
                    sock.send(b" ")

    dripper = threading.Thread(target=drip)
    dripper.start()
    started = time.monotonic()
    try:
        _still_serving(server)
        replies = [_read_reply(sock, timeout=15)[0] for sock in attackers]
    finally:
        stop.set()
        dripper.join()
        for sock in attackers:
            sock.close()
    assert time.monotonic() - started < 20
    for reply in replies:
        status_line, _, body = reply.partition(b"\r\n\r\n")
        assert status_line.startswith(b"HTTP/1.1 408"), reply[:200]
        answer = json.loads(body)
        check_schema(408, answer)
        assert answer["kind"] == "request_timeout"


API_KEY = "k" * 24


def test_with_api_keys_a_stalled_body_without_a_key_is_refused_at_once_holding_nothing(
    live_server: Callable[..., LiveServer],
) -> None:
    """Bodies declared at the 8 MiB maximum and then stalled, from a client with no key,
    get 401 at once, before any of the in-flight budget is held (tests/unit/
    test_bodylimit.py checks that nothing is reserved). With 16 MB of budget, the first
    would otherwise have held the large half for its body deadline (138 s) and the
    others got 503."""
    server = live_server(PYEXEC_API_KEYS=API_KEY, PYEXEC_INFLIGHT_MB="16")
    attackers = []
    try:
        for _ in range(4):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(
                b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 8388608\r\n\r\n{"
            )
            attackers.append(sock)
        for sock in attackers:
            status_line, _, body = _read_json_reply(sock, timeout=10).partition(b"\r\n\r\n")
            assert status_line.startswith(b"HTTP/1.1 401"), status_line
            answer = json.loads(body)
            check_schema(401, answer)
            assert answer["kind"] == "unauthorized"
        request = urllib.request.Request(
            f"{server.base}/execute",
            data=json.dumps(HELLO).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
            assert json.loads(answer.read())["result"] == "hello"
    finally:
        for sock in attackers:
            sock.close()


def _read_json_reply(sock: socket.socket, timeout: float) -> bytes:
    """One answer whose body is a JSON object, read until it ends (the connection may
    stay open): empty if none came within ``timeout``."""
    sock.settimeout(timeout)
    reply = b""
    with contextlib.suppress(TimeoutError):
        while not reply.endswith(b"}") and (chunk := sock.recv(65536)):
            reply += chunk
    return reply


def _big_printout_client(port: int) -> socket.socket:
    """A client with a 4 KB receive buffer that asks for 1 MB of control characters
    (~6 MB of JSON escapes) and will never read the answer."""
    body = json.dumps(
        {"script": "def main():\n    print('\\x01' * (1024 * 1024))\n    return 1\n"}
    ).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return sock


def test_clients_that_never_read_their_answer_lose_the_connection_at_its_deadline(
    live_server: Callable[..., LiveServer],
) -> None:
    """64 clients ask for a 1 MB printout with a tiny receive buffer and never read:
    the service still answers others, and drops each of them once its answer's
    deadline (10 s plus its size at PYEXEC_BODY_MIN_RATE) has passed."""
    server = live_server(PYEXEC_BODY_MIN_RATE=str(1024 * 1024 * 1024))
    attackers = [_big_printout_client(server.port) for _ in range(ATTACKERS)]
    started = time.monotonic()
    try:
        _still_serving(server)
        time.sleep(12)  # about the problem itself: the answers' deadline is 10 s
        _still_serving(server)
        # Each connection was either answered in full (a quick 503, or a 200 whose
        # answer fit the buffers) or shut by the server: none is left open.
        closed = [_read_reply(sock, timeout=5)[1] for sock in attackers]
    finally:
        for sock in attackers:
            sock.close()
    assert time.monotonic() - started < 40
    assert closed == [True] * ATTACKERS


def _worker_memory_kib(server: LiveServer, field: str) -> int:
    """VmRSS or VmHWM of the gunicorn worker (the master's only child), KiB."""
    master = server.process.pid
    (worker,) = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    for line in Path(f"/proc/{worker}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{worker}/status")


def test_big_answers_nobody_reads_are_bounded_by_the_inflight_budget(
    live_server: Callable[..., LiveServer],
) -> None:
    """64 clients ask for a 6 MB answer (1 MB of escaped control characters) and never
    read it: held answers fill only the big half of PYEXEC_INFLIGHT_MB (8 MB here, one
    answer), the rest get 503 overloaded, a hello is still served, and the worker's
    memory grows by the budget and the answers being built, not by 64 x 6 MB."""
    server = live_server(PYEXEC_INFLIGHT_MB="16", PYEXEC_BODY_MIN_RATE=str(1024**3))
    before = _worker_memory_kib(server, "VmRSS")
    attackers = []
    for _ in range(ATTACKERS):
        attackers.append(_big_printout_client(server.port))
        time.sleep(0.1)  # paced, so that admission lets them all run
    try:
        _still_serving(server)
        replies = [_read_reply(sock, timeout=30)[0] for sock in attackers]
    finally:
        for sock in attackers:
            sock.close()
    grown_mib = (_worker_memory_kib(server, "VmHWM") - before) / 1024
    heads = [reply.split(b"\r\n", 1)[0] for reply in replies]
    refused = [reply for reply in replies if reply.startswith(b"HTTP/1.1 503")]
    assert len(refused) > ATTACKERS // 2, heads
    for reply in refused:
        answer = json.loads(reply.partition(b"\r\n\r\n")[2])
        check_schema(503, answer)
        assert answer["kind"] == "overloaded"
    assert any(
        "PYEXEC_INFLIGHT_MB" in json.loads(r.partition(b"\r\n\r\n")[2])["error"] for r in refused
    )
    # Without the budget the worker grew by ~590 MB here; the budget (16) plus 8
    # answers being built (~15 MB each: the output, its text, the JSON) stays well
    # under 250.
    assert grown_mib < 250, grown_mib


def test_half_sent_heads_are_dropped_at_their_deadline_and_others_are_served(
    live_server: Callable[..., LiveServer],
) -> None:
    """64 clients send half a request head and stall: gunicorn would wait for the rest
    for ever, holding a thread each; the head deadline (PYEXEC_BODY_TIMEOUT) drops them,
    and the service answers others throughout."""
    server = live_server(PYEXEC_BODY_TIMEOUT="1")
    attackers = []
    for _ in range(ATTACKERS):
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Ty")
        attackers.append(sock)
    started = time.monotonic()
    try:
        _still_serving(server)
        closed = [_read_reply(sock, timeout=10)[1] for sock in attackers]
    finally:
        for sock in attackers:
            sock.close()
    assert closed == [True] * ATTACKERS
    assert time.monotonic() - started < 20
