"""pyexec.gunicorn_worker: each exception gunicorn answers itself gets gunicorn's own
status, a kind of that status in the error schema, and a sentence without the
request's bytes; the answer is a whole HTTP message that closes the connection.

No server: the mapping is called directly, gunicorn's own ``handle_error`` runs on
a socket that records what it was sent (to read the status gunicorn gives), and the
worker's ``handle_error`` writes into a socket pair.
"""

from __future__ import annotations

import inspect
import json
import logging
import runpy
import selectors
import socket
import ssl
import struct
from collections import deque
from pathlib import Path
from typing import Any

import pytest
from gunicorn import util  # type: ignore[import-untyped]
from gunicorn.config import Config  # type: ignore[import-untyped]
from gunicorn.http import errors  # type: ignore[import-untyped]
from gunicorn.workers import gthread  # type: ignore[import-untyped]
from gunicorn.workers.base import Worker  # type: ignore[import-untyped]
from gunicorn.workers.gthread import TConn, ThreadWorker  # type: ignore[import-untyped]

from pyexec import answers
from pyexec.gunicorn_worker import (
    FAST_PARSER_LINE_LIMIT,
    JsonThreadWorker,
    Limits,
    answer_for,
    peek,
    to_http,
)
from pyexec.schemas import load_schema, validator
from tests.support import SCHEMA_STATUS

ROOT = Path(__file__).resolve().parent.parent.parent
ERROR_VALIDATOR = validator(load_schema("error"))
# What gunicorn.conf.py sets.
LIMITS = Limits(request_line=8190, fields=64, field_size=8190)
# Stands for the request's bytes that gunicorn puts into its exceptions.
MARKER = "pyexec-request-bytes"
FIELDS = "limit request headers fields"
FIELD_SIZE = "limit request headers fields size"
TRAILER = "limit request trailer section size"

# Every exception class of gunicorn.http.errors (each failure an exception of them
# stands for, where the sentence differs), an SSL error and an exception of the app,
# with the status and kind the worker answers.
CASES: dict[str, tuple[BaseException, int, str]] = {
    "InvalidRequestLine": (errors.InvalidRequestLine(MARKER), 400, "bad_request"),
    "InvalidRequestMethod": (errors.InvalidRequestMethod(MARKER), 400, "bad_request"),
    "InvalidHTTPVersion": (errors.InvalidHTTPVersion(MARKER), 400, "bad_request"),
    "InvalidHeader": (errors.InvalidHeader(MARKER), 400, "bad_request"),
    "InvalidHeader-content-length": (errors.InvalidHeader("CONTENT-LENGTH"), 400, "bad_request"),
    "InvalidHeader-transfer-encoding": (
        errors.InvalidHeader("TRANSFER-ENCODING"),
        400,
        "bad_request",
    ),
    "InvalidHeaderName": (errors.InvalidHeaderName(MARKER), 400, "bad_request"),
    "ObsoleteFolding": (errors.ObsoleteFolding(MARKER), 400, "bad_request"),
    "InvalidSchemeHeaders": (errors.InvalidSchemeHeaders(), 400, "bad_request"),
    "InvalidChunkSize": (errors.InvalidChunkSize(MARKER.encode()), 400, "bad_request"),
    "ChunkMissingTerminator": (
        errors.ChunkMissingTerminator(MARKER.encode()),
        400,
        "bad_request",
    ),
    "InvalidChunkExtension": (errors.InvalidChunkExtension(MARKER), 400, "bad_request"),
    "InvalidProxyLine": (errors.InvalidProxyLine(MARKER), 400, "bad_request"),
    "InvalidH2CPreface": (errors.InvalidH2CPreface(MARKER.encode()), 400, "bad_request"),
    "LimitRequestLine": (errors.LimitRequestLine(9000, 8190), 414, "uri_too_long"),
    "LimitRequestHeaders-fields": (errors.LimitRequestHeaders(FIELDS), 431, "headers_too_large"),
    "LimitRequestHeaders-field-size": (
        errors.LimitRequestHeaders(FIELD_SIZE),
        431,
        "headers_too_large",
    ),
    "LimitRequestHeaders-trailer": (
        errors.LimitRequestHeaders(TRAILER),
        431,
        "headers_too_large",
    ),
    "LimitRequestHeaders-buffer": (
        errors.LimitRequestHeaders("max buffer headers"),
        431,
        "headers_too_large",
    ),
    "LimitRequestHeaders-other": (errors.LimitRequestHeaders(MARKER), 431, "headers_too_large"),
    "ExpectationFailed": (errors.ExpectationFailed(MARKER), 417, "expectation_failed"),
    "UnsupportedTransferCoding": (
        errors.UnsupportedTransferCoding(MARKER),
        501,
        "unsupported_transfer_coding",
    ),
    "ForbiddenProxyRequest": (errors.ForbiddenProxyRequest(MARKER), 403, "forbidden"),
    "SSLError": (ssl.SSLError(1, MARKER), 403, "forbidden"),
    # The service's own faults, and what gunicorn does not name: the generic 500.
    "InvalidResponseHeader": (errors.InvalidResponseHeader(MARKER), 500, "internal_error"),
    "InvalidResponseHeaderName": (
        errors.InvalidResponseHeaderName(MARKER),
        500,
        "internal_error",
    ),
    "ConfigurationProblem": (errors.ConfigurationProblem(MARKER), 500, "internal_error"),
    "InvalidProxyHeader": (errors.InvalidProxyHeader(MARKER), 500, "internal_error"),
    "ParseException": (errors.ParseException(MARKER), 500, "internal_error"),
    "NoMoreData": (errors.NoMoreData(MARKER.encode()), 500, "internal_error"),
    "an exception of the app": (RuntimeError(f"/srv/pyexec {MARKER}"), 500, "internal_error"),
}


class RecordingSocket:
    """Enough of a socket for gunicorn.util.write_nonblock: keeps what is sent."""

    def __init__(self) -> None:
        self.sent = b""

    def gettimeout(self) -> float:
        return 0.0

    def setblocking(self, flag: bool) -> None:
        pass

    def sendall(self, data: bytes) -> None:
        self.sent += data


class QuietLog:
    """gunicorn's logger, for gunicorn's own handle_error: says nothing."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class GunicornsWorker:
    """What gunicorn's own Worker.handle_error reads of its worker."""

    log = QuietLog()
    cfg = Config()


def gunicorns_status(exc: BaseException) -> int:
    """The status gunicorn's own handle_error answers ``exc`` with."""
    sock = RecordingSocket()
    Worker.handle_error(GunicornsWorker(), None, sock, ("127.0.0.1", 1), exc)
    status_line = sock.sent.split(b"\r\n", 1)[0].decode()
    assert status_line.startswith("HTTP/1.1 "), status_line
    return int(status_line.split()[1])


def parse_http(data: bytes) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(status line, headers, JSON body) of a whole HTTP answer; checks the length."""
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    assert headers["Content-Length"] == str(len(body))
    parsed: dict[str, Any] = json.loads(body)
    return status_line, headers, parsed


def config(**settings: Any) -> Any:
    cfg = Config()
    for name, value in settings.items():
        cfg.set(name, value)
    return cfg


def test_most_cases_carry_the_marker_in_the_exceptions_text() -> None:
    # Guards the test below: it would pass vacuously if the text held no marker.
    carrying = [exc for exc, _status, _kind in CASES.values() if MARKER in str(exc)]
    assert len(carrying) >= 20


def test_the_cases_cover_every_exception_class_of_gunicorns_http_errors() -> None:
    # A gunicorn that adds an exception class fails here, until a case says how it
    # is answered.
    classes = {
        cls
        for _name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == errors.__name__
    }
    assert len(classes) > 20
    assert classes <= {type(exc) for exc, _status, _kind in CASES.values()}


@pytest.mark.parametrize(("exc", "status", "kind"), CASES.values(), ids=CASES.keys())
def test_each_exception_gets_gunicorns_own_status(
    exc: BaseException, status: int, kind: str
) -> None:
    assert gunicorns_status(exc) == status
    assert answer_for(exc, LIMITS).status == status


@pytest.mark.parametrize(("exc", "status", "kind"), CASES.values(), ids=CASES.keys())
def test_each_exception_gets_a_kind_of_its_status_in_the_error_schema(
    exc: BaseException, status: int, kind: str
) -> None:
    answer = answer_for(exc, LIMITS)
    assert answer.body["kind"] == kind
    assert SCHEMA_STATUS[kind] == status
    ERROR_VALIDATOR.validate(answer.body)


@pytest.mark.parametrize(("exc", "status", "kind"), CASES.values(), ids=CASES.keys())
def test_no_answer_holds_the_exceptions_text(exc: BaseException, status: int, kind: str) -> None:
    answer = answer_for(exc, LIMITS)
    encoded = answers.encode(answer.body)
    assert MARKER.encode() not in encoded
    assert b"/srv" not in encoded
    assert set(answer.body) == {"error", "kind"}
    assert answer.body["error"].endswith(".")


def test_the_service_faults_get_the_one_generic_500_body() -> None:
    for exc, status, _kind in CASES.values():
        if status == 500:
            assert answer_for(exc, LIMITS) == answers.internal_error()


def test_the_sentences_name_the_limit_that_was_passed() -> None:
    limits = Limits(request_line=100, fields=10, field_size=200)

    def sentence(exc: BaseException) -> str:
        message: str = answer_for(exc, limits).body["error"]
        return message

    assert sentence(errors.LimitRequestLine(150, 100)).startswith(
        "The request line is longer than 100 bytes;"
    )
    assert sentence(errors.LimitRequestHeaders(FIELDS)) == (
        "The request has more than 10 header fields."
    )
    assert sentence(errors.LimitRequestHeaders(FIELD_SIZE)) == (
        "A header field is longer than 200 bytes."
    )
    assert "at most 10 header fields of at most 200 bytes each" in sentence(
        errors.LimitRequestHeaders("max buffer headers")
    )


def test_an_invalid_header_names_content_length_or_transfer_encoding_when_they_are_wrong() -> None:
    def sentence(exc: BaseException) -> str:
        message: str = answer_for(exc, LIMITS).body["error"]
        return message

    content_length = sentence(errors.InvalidHeader("CONTENT-LENGTH"))
    transfer_encoding = sentence(errors.InvalidHeader("TRANSFER-ENCODING"))
    other = sentence(errors.InvalidHeader("HOST"))
    assert content_length.startswith("The Content-Length header is not valid")
    assert transfer_encoding.startswith("The Transfer-Encoding header is not valid")
    assert other.startswith("A header is not valid")


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        # gunicorn.conf.py
        (
            {
                "limit_request_line": 8190,
                "limit_request_fields": 64,
                "limit_request_field_size": 8190,
            },
            LIMITS,
        ),
        # gunicorn caps the request line at 8190 bytes and the fields at 32768; 0 is its default.
        (
            {
                "limit_request_line": 20000,
                "limit_request_fields": 0,
                "limit_request_field_size": 0,
            },
            Limits(request_line=8190, fields=32768, field_size=8190),
        ),
        (
            {
                "limit_request_line": 100,
                "limit_request_fields": 40000,
                "limit_request_field_size": 100,
            },
            Limits(request_line=100, fields=32768, field_size=100),
        ),
        # 0: no limit for the Python parser, 1 MiB for the C one.
        (
            {"limit_request_line": 0, "limit_request_fields": 10, "limit_request_field_size": 100},
            Limits(request_line=FAST_PARSER_LINE_LIMIT, fields=10, field_size=100),
        ),
    ],
)
def test_limits_are_read_from_gunicorns_config_as_its_parser_clamps_them(
    settings: dict[str, int], expected: Limits
) -> None:
    assert Limits.from_config(config(**settings)) == expected


def test_to_http_is_a_whole_answer_that_closes_the_connection() -> None:
    data = to_http(answer_for(errors.LimitRequestLine(9000, 8190), LIMITS), "abc123")
    status_line, headers, body = parse_http(data)
    assert status_line == "HTTP/1.1 414 Request-URI Too Long"
    assert headers == {
        "Content-Type": "application/json",
        "Content-Length": headers["Content-Length"],
        "Connection": "close",
        "X-Request-Id": "abc123",
    }
    assert body["kind"] == "uri_too_long"


def test_to_http_keeps_the_headers_of_the_outcome() -> None:
    outcome = answers.Outcome(
        503, {"error": "Busy.", "kind": "overloaded"}, (("Retry-After", "1"),)
    )
    assert parse_http(to_http(outcome, "id"))[1]["Retry-After"] == "1"


def bare_worker() -> JsonThreadWorker:
    """A worker with only what handle_error reads (gunicorn's constructor wants a
    whole arbiter)."""
    worker: JsonThreadWorker = object.__new__(JsonThreadWorker)
    worker.cfg = config(limit_request_fields=64)
    return worker


def test_handle_error_writes_the_json_answer_to_the_client_and_logs_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, client = socket.socketpair()
    with server, client, caplog.at_level(logging.INFO, logger="pyexec.server"):
        bare_worker().handle_error(
            None, server, ("127.0.0.1", 1), errors.LimitRequestHeaders(FIELDS)
        )
        server.close()
        client.settimeout(5)
        data = b""
        while chunk := client.recv(65536):
            data += chunk
    status_line, headers, body = parse_http(data)
    assert status_line == "HTTP/1.1 431 Request Header Fields Too Large"
    assert body == {
        "error": "The request has more than 64 header fields.",
        "kind": "headers_too_large",
    }
    (record,) = [r for r in caplog.records if r.name == "pyexec.server"]
    fields: dict[str, Any] = record.fields  # type: ignore[attr-defined]
    assert record.levelno == logging.INFO
    assert fields["request_id"] == headers["X-Request-Id"]
    assert fields["kind"] == "headers_too_large"
    assert fields["httpRequest"] == {"status": 431}
    assert fields["exception"] == "LimitRequestHeaders"
    assert record.exc_info is None


def test_handle_error_logs_a_service_fault_with_its_traceback_and_answers_the_generic_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, client = socket.socketpair()
    try:
        raise RuntimeError(f"/srv/pyexec {MARKER}")
    except RuntimeError as exc:
        fault = exc
    with server, client, caplog.at_level(logging.INFO, logger="pyexec.server"):
        bare_worker().handle_error(None, server, ("127.0.0.1", 1), fault)
        client.settimeout(5)
        data = client.recv(65536)
    _status, _headers, body = parse_http(data)
    assert body == answers.internal_error().body
    (record,) = [r for r in caplog.records if r.name == "pyexec.server"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert record.exc_info[1] is fault


def test_handle_error_on_a_closed_connection_does_not_raise() -> None:
    server, client = socket.socketpair()
    client.close()
    with server:
        bare_worker().handle_error(None, server, ("127.0.0.1", 1), errors.InvalidRequestLine(""))


def test_gunicorn_conf_selects_this_worker_a_gthread_worker() -> None:
    # Executed as gunicorn executes it; the class is found as gunicorn finds it.
    namespace = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    worker_class = util.load_class(namespace["worker_class"])
    assert worker_class is JsonThreadWorker
    assert issubclass(worker_class, ThreadWorker)


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A real loopback TCP connection: (the server's end, non-blocking as gthread
    leaves a kept-alive one, and the client's)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    server.setblocking(False)
    return server, client


def reset(client: socket.socket) -> None:
    """Close with SO_LINGER 0, so that the peer gets a TCP reset, not a FIN."""
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()


def test_peek_tells_bytes_from_nothing_yet_from_an_ended_connection() -> None:
    server, client = tcp_pair()
    with server, client:
        assert peek(server) == "nothing"  # nothing sent yet
        client.sendall(b"GET / HTTP/1.1\r\n")
        client.shutdown(socket.SHUT_WR)  # a request, then the end: bytes come first
        assert wait_readable(server)
        assert peek(server) == "bytes"
        assert server.recv(100) == b"GET / HTTP/1.1\r\n"  # peeking took nothing
        assert peek(server) == "ended"
    server, client = tcp_pair()
    with server:
        reset(client)
        assert wait_readable(server)
        assert peek(server) == "ended"


def test_peek_sees_nothing_on_a_socket_that_takes_no_flags() -> None:
    server, client = socket.socketpair()
    with server, client:
        client.sendall(b"\x16\x03\x01")  # bytes are there, but TLS hides them
        context = ssl.create_default_context()
        wrapped = context.wrap_socket(server, do_handshake_on_connect=False, server_hostname="x")
        with wrapped:
            assert peek(wrapped) == "nothing"


def wait_readable(sock: socket.socket) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        return bool(selector.select(timeout=10))


class KeptAlive:
    """A bare worker with one kept-alive connection registered in its poller, as
    gthread's finish_request leaves it; records what it hands to worker threads."""

    def __init__(self) -> None:
        self.server, self.client = tcp_pair()
        self.worker = bare_worker()
        self.worker.poller = selectors.DefaultSelector()
        self.worker.nr_conns = 1
        self.conn = TConn(self.worker.cfg, self.server, ("127.0.0.1", 1), ("127.0.0.1", 2))
        self.worker.keepalived_conns = deque([self.conn])
        self.worker.poller.register(self.server, selectors.EVENT_READ)
        self.enqueued: list[Any] = []
        self.worker.enqueue_req = self.enqueued.append

    def wake(self) -> None:
        assert wait_readable(self.server)
        self.worker.on_client_socket_readable(self.conn, self.server)


@pytest.mark.parametrize("ending", ["close", "reset"])
def test_a_kept_alive_connection_the_client_ended_is_closed_in_the_main_loop(
    ending: str,
) -> None:
    kept = KeptAlive()
    with kept.server:
        if ending == "close":
            kept.client.close()
        else:
            reset(kept.client)
        kept.wake()
        assert kept.enqueued == []  # no worker thread was woken for it
        assert kept.worker.nr_conns == 0
        assert not kept.worker.keepalived_conns
        assert kept.worker.poller.get_map() == {}
        assert kept.server.fileno() == -1  # closed


def test_a_kept_alive_connection_with_a_request_goes_to_a_worker_thread() -> None:
    kept = KeptAlive()
    with kept.client, kept.server:
        kept.client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        kept.wake()
        assert kept.enqueued == [kept.conn]
        assert kept.worker.nr_conns == 1  # still open, now the thread's
        assert not kept.worker.keepalived_conns
        assert kept.worker.poller.get_map() == {}
        assert kept.server.recv(4, socket.MSG_PEEK) == b"GET "  # nothing was taken


def test_a_new_connection_whose_request_is_there_skips_gthreads_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, client = tcp_pair()
    with server, client:
        worker = bare_worker()
        worker.head_seconds = 10.0
        conn = TConn(worker.cfg, server, ("127.0.0.1", 1), ("127.0.0.1", 2))
        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_readable(server)
        waits: list[float] = []
        conn.wait_for_data = waits.append  # gthread's wait, recorded
        monkeypatch.setattr(worker, "handle_request", lambda _req, _conn: False)  # not the app
        worker.handle(conn)
        assert conn.data_ready
        assert waits == []


def test_a_new_connection_with_nothing_yet_still_gets_gthreads_wait() -> None:
    server, client = tcp_pair()
    with server, client:
        worker = bare_worker()
        worker.head_seconds = 10.0
        conn = TConn(worker.cfg, server, ("127.0.0.1", 1), ("127.0.0.1", 2))
        waits: list[float] = []

        def no_data(timeout: float) -> bool:
            waits.append(timeout)
            return False

        conn.wait_for_data = no_data
        assert worker.handle(conn) is gthread._DEFER  # to the poller, as gthread does
        assert not conn.data_ready
        assert len(waits) == 1


def test_notify_tells_the_arbiter_at_most_once_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = bare_worker()
    told: list[float] = []
    clock = [1000.0]
    monkeypatch.setattr(ThreadWorker, "notify", lambda _self: told.append(clock[0]))
    monkeypatch.setattr("pyexec.gunicorn_worker.time.monotonic", lambda: clock[0])
    for step in range(30):  # 3 s of a busy main loop, every 0.1 s
        clock[0] = 1000.0 + step / 10
        worker.notify()
    assert told == [1000.0, 1001.0, 1002.0]
