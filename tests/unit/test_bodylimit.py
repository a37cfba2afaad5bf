"""pyexec.bodylimit: bodies over the limit get a JSON 413 (a declared one without a byte
read), stalled bodies a JSON 408, and the app below reads every other body from memory.

Driven through werkzeug's test tools, with no server: a tiny WSGI app records what
it was handed.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from werkzeug.test import Client, EnvironBuilder, run_wsgi_app

from pyexec import bodylimit
from pyexec.bodylimit import BodyLimit
from pyexec.inflight import InFlight
from pyexec.schemas import load_schema, validator

LIMIT = 1024
READ_TIMEOUT = 2.5
ERROR_VALIDATOR = validator(load_schema("error"))


class RecordingApp:
    """A WSGI app that reads the body it was given (by a numeric CONTENT_LENGTH) and
    keeps it."""

    def __init__(self) -> None:
        self.calls = 0
        self.environ: dict[str, Any] = {}
        self.body = b""

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        self.calls += 1
        self.environ = environ
        declared = (environ.get("CONTENT_LENGTH") or "").strip()
        length = int(declared) if declared.isascii() and declared.isdigit() else 0
        self.body = environ["wsgi.input"].read(length) if length else b""
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]


class UnreadableInput:
    """A wsgi.input that fails the test if anything reads it."""

    def read(self, size: int = -1) -> bytes:
        raise AssertionError(f"the body was read ({size} bytes)")


class StalledInput:
    """A wsgi.input whose client stopped sending: the socket's read timeout expires."""

    def read(self, size: int = -1) -> bytes:
        raise TimeoutError("timed out")


class CountingInput(io.BytesIO):
    """A wsgi.input that records the size of every read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.sizes: list[int | None] = []

    def read(self, size: int | None = -1) -> bytes:
        self.sizes.append(size)
        return super().read(size)


def _environ(stream: Any, content_length: str | None, *, chunked: bool = False) -> dict[str, Any]:
    environ: dict[str, Any] = EnvironBuilder(method="POST", path="/execute").get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ["wsgi.input"] = stream
    if content_length is not None:
        environ["CONTENT_LENGTH"] = content_length
    if chunked:
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    return environ


def _call(app: RecordingApp, environ: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """Run the middleware over ``app``: status code, headers and body."""
    app_iter, status, headers = run_wsgi_app(BodyLimit(app, LIMIT, READ_TIMEOUT), environ)
    body = b"".join(app_iter)
    return int(status.split()[0]), dict(headers), body


def _assert_error(status: int, headers: dict[str, str], body: bytes, kind: str) -> None:
    parsed = json.loads(body)
    ERROR_VALIDATOR.validate(parsed)
    assert parsed["kind"] == kind
    assert headers["Content-Type"] == "application/json"
    assert headers["Content-Length"] == str(len(body))
    assert headers["Connection"] == "close"


@pytest.mark.parametrize("declared", [LIMIT + 1, 10 * LIMIT, 2**40])
def test_a_declared_length_over_the_limit_is_refused_without_reading_the_body(
    declared: int, caplog: pytest.LogCaptureFixture
) -> None:
    app = RecordingApp()
    environ = _environ(UnreadableInput(), str(declared))
    with caplog.at_level(logging.INFO, logger="pyexec.http"):
        status, headers, body = _call(app, environ)
    assert status == 413
    _assert_error(status, headers, body, "body_too_large")
    assert str(LIMIT) in json.loads(body)["error"]
    assert app.calls == 0
    # The app never sees it, so the refusal has a log line of its own.
    (record,) = [r for r in caplog.records if r.name == "pyexec.http"]
    assert record.__dict__["fields"] == {
        "kind": "body_too_large",
        "bytes": declared,
        "limit_bytes": LIMIT,
    }


@pytest.mark.parametrize("size", [1, LIMIT - 1, LIMIT])
def test_a_body_within_the_limit_reaches_the_app_with_its_length(size: int) -> None:
    app = RecordingApp()
    data = b"x" * size
    response = Client(BodyLimit(app, LIMIT, READ_TIMEOUT)).post("/execute", data=data)
    assert response.status_code == 200
    assert app.body == data
    assert app.environ["CONTENT_LENGTH"] == str(size)


def test_a_body_over_the_limit_gets_a_json_413_through_a_client() -> None:
    app = RecordingApp()
    response = Client(BodyLimit(app, LIMIT, READ_TIMEOUT)).post(
        "/execute", data=b"x" * (LIMIT + 1)
    )
    assert response.status_code == 413
    ERROR_VALIDATOR.validate(response.get_json())
    assert app.calls == 0


@pytest.mark.parametrize("declared", [None, "3"], ids=["no length", "a short length"])
def test_a_chunked_body_over_the_limit_is_refused_after_limit_plus_one_bytes(
    declared: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    app = RecordingApp()
    stream = CountingInput(b"x" * (LIMIT * 4))
    with caplog.at_level(logging.INFO, logger="pyexec.http"):
        status, headers, body = _call(app, _environ(stream, declared, chunked=True))
    assert status == 413
    _assert_error(status, headers, body, "body_too_large")
    assert app.calls == 0
    assert stream.sizes == [LIMIT + 1]
    (record,) = [r for r in caplog.records if r.name == "pyexec.http"]
    assert record.__dict__["fields"]["bytes"] == LIMIT + 1


@pytest.mark.parametrize("size", [1, 100, LIMIT])
def test_a_chunked_body_within_the_limit_reaches_the_app_as_a_plain_one(size: int) -> None:
    app = RecordingApp()
    data = bytes(range(256)) * (size // 256) + b"y" * (size % 256)
    status, _headers, _body = _call(app, _environ(io.BytesIO(data), None, chunked=True))
    assert status == 200
    assert app.body == data
    assert app.environ["CONTENT_LENGTH"] == str(size)
    assert "HTTP_TRANSFER_ENCODING" not in app.environ


@pytest.mark.parametrize("declared", [None, "", "0", " ", "abc", "-5"])
def test_a_body_without_a_positive_length_goes_to_the_app_untouched(declared: str | None) -> None:
    app = RecordingApp()
    stream = UnreadableInput()
    environ = _environ(stream, declared)
    status, _headers, _body = _call(app, environ)
    assert status == 200
    assert app.calls == 1
    assert app.environ["wsgi.input"] is stream
    assert app.environ.get("CONTENT_LENGTH") == declared


def test_a_body_that_stalls_gets_a_json_408_naming_the_timeout() -> None:
    app = RecordingApp()
    status, headers, body = _call(app, _environ(StalledInput(), "100"))
    assert status == 408
    _assert_error(status, headers, body, "request_timeout")
    assert "2.5 s" in json.loads(body)["error"]
    assert app.calls == 0


def test_a_chunked_body_that_stalls_gets_a_json_408() -> None:
    app = RecordingApp()
    status, headers, body = _call(app, _environ(StalledInput(), None, chunked=True))
    assert status == 408
    _assert_error(status, headers, body, "request_timeout")


def test_a_dripped_body_is_cut_at_its_whole_body_deadline_with_a_408(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One byte every 50 ms never finishes 100 bytes; the deadline (0.3 s plus 100
    bytes at 1 KiB/s) ends the read, whatever each recv would have waited."""
    server, client = socket.socketpair()
    stop = threading.Event()

    def drip() -> None:
        while not stop.wait(0.05):
            with contextlib.suppress(OSError):
                client.send(b"{")

    dripper = threading.Thread(target=drip)
    dripper.start()
    try:
        environ = _environ(server.makefile("rb"), "100")
        environ["gunicorn.socket"] = server
        app = RecordingApp()
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="pyexec.http"):
            app_iter, status, headers = run_wsgi_app(
                BodyLimit(app, LIMIT, 0.3, min_rate=1024), environ
            )
            body = b"".join(app_iter)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        dripper.join()
        server.close()
        client.close()
    assert int(status.split()[0]) == 408
    _assert_error(408, dict(headers), body, "request_timeout")
    assert 0.3 <= elapsed < 3
    assert app.calls == 0
    (record,) = [r for r in caplog.records if r.name == "pyexec.http"]
    fields = record.__dict__["fields"]
    assert fields["kind"] == "request_timeout"
    assert fields["bytes_expected"] == 100
    assert 0 < fields["bytes_received"] < 100


def test_an_answer_the_client_does_not_take_in_time_shuts_the_connection(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server writes the answer into a socket whose peer never reads: at the
    answer's deadline the socket is shut down, the write fails, the expiry is logged."""
    monkeypatch.setattr(bodylimit, "SEND_BASE_SECONDS", 0.3)
    server, client = socket.socketpair()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    big = b"x" * (8 * 1024 * 1024)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", str(len(big)))])
        return [big]

    environ = _environ(io.BytesIO(b""), None)
    environ["gunicorn.socket"] = server
    started = time.monotonic()
    try:
        with caplog.at_level(logging.WARNING, logger="pyexec.http"):
            answer = BodyLimit(app, LIMIT, READ_TIMEOUT, min_rate=1024 * 1024 * 1024)(
                environ, lambda status, headers, *args: None
            )

            def write() -> None:  # as the server writes it
                for chunk in answer:
                    server.sendall(chunk)

            with pytest.raises(BrokenPipeError):
                write()
            answer.close()  # type: ignore[attr-defined]
    finally:
        server.close()
        client.close()
    assert time.monotonic() - started < 5
    (record,) = [r for r in caplog.records if r.name == "pyexec.http"]
    assert record.__dict__["fields"]["kind"] == "answer_timeout"


@pytest.mark.parametrize(
    "declared", ["\u00b2", "9" * 5000], ids=["superscript two", "5000 digits"]
)
def test_a_content_length_that_int_cannot_read_gets_an_answer_not_an_exception(
    declared: str,
) -> None:
    app = RecordingApp()
    status, _headers, _body = _call(app, _environ(io.BytesIO(b"{}"), declared))
    assert status == (413 if declared.isascii() else 200)


def test_a_body_that_does_not_fit_in_flight_gets_503_overloaded_unread() -> None:
    budget = InFlight(4 * 1024)
    held = budget.reserve(4000)
    assert held is not None
    app = RecordingApp()
    app_iter, status, headers = run_wsgi_app(
        BodyLimit(app, LIMIT, READ_TIMEOUT, inflight=budget),
        _environ(UnreadableInput(), "500"),
    )
    body = b"".join(app_iter)
    assert int(status.split()[0]) == 503
    _assert_error(503, dict(headers), body, "overloaded")
    assert dict(headers)["Retry-After"] == "1"
    assert "PYEXEC_INFLIGHT_MB" in json.loads(body)["error"]
    assert app.calls == 0


def test_an_answer_that_does_not_fit_in_flight_gets_503_and_gives_everything_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    budget = InFlight(8 * 1024 * 1024)
    big = b"x" * (2 * 1024 * 1024)  # over LARGE_BYTES; the large half holds 4 MB
    other = budget.reserve(3 * 1024 * 1024)
    assert other is not None
    closed = []

    class Answer(list[bytes]):
        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", str(len(big)))])
        return Answer([big])

    with caplog.at_level(logging.WARNING, logger="pyexec.http"):
        app_iter, status, headers = run_wsgi_app(
            BodyLimit(app, LIMIT, READ_TIMEOUT, inflight=budget),
            _environ(io.BytesIO(b"{}"), "2"),
        )
        body = b"".join(app_iter)
    assert int(status.split()[0]) == 503
    _assert_error(503, dict(headers), body, "overloaded")
    assert closed == [True]
    assert budget.used() == (3 * 1024 * 1024, 3 * 1024 * 1024)  # the body's 2 bytes are back
    (record,) = [r for r in caplog.records if r.name == "pyexec.http"]
    assert record.__dict__["fields"]["kind"] == "overloaded"
    assert record.__dict__["fields"]["bytes"] == len(big)


def test_body_and_answer_are_held_until_the_server_closes_the_answer() -> None:
    budget = InFlight(1024 * 1024)
    app = RecordingApp()
    app_iter, status, _headers = run_wsgi_app(
        BodyLimit(app, LIMIT, READ_TIMEOUT, inflight=budget), _environ(io.BytesIO(b"{}"), "2")
    )
    assert status.startswith("200")
    assert budget.used()[0] == 2  # the body; RecordingApp's answer has no Content-Length
    assert b"".join(app_iter) == b"ok"
    app_iter.close()  # type: ignore[attr-defined]
    assert budget.used() == (0, 0)


def test_a_failed_body_gives_its_reservation_back() -> None:
    budget = InFlight(1024 * 1024)
    for environ in (
        _environ(StalledInput(), "100"),
        _environ(io.BytesIO(b"x" * (LIMIT + 10)), None, chunked=True),
    ):
        app_iter, status, _headers = run_wsgi_app(
            BodyLimit(RecordingApp(), LIMIT, READ_TIMEOUT, inflight=budget), environ
        )
        b"".join(app_iter)
        assert status[:3] in ("408", "413")
    assert budget.used() == (0, 0)


def test_an_answer_no_budget_could_ever_hold_is_a_final_400_not_a_503() -> None:
    budget = InFlight(16 * 1024 * 1024)  # one answer over 1 MB may hold at most 8 MB
    big = b"x" * (9 * 1024 * 1024)

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Length", str(len(big)))])
        return [big]

    app_iter, status, headers = run_wsgi_app(
        BodyLimit(app, LIMIT, READ_TIMEOUT, inflight=budget), _environ(io.BytesIO(b""), None)
    )
    body = b"".join(app_iter)
    assert int(status.split()[0]) == 400
    _assert_error(400, dict(headers), body, "answer_too_large")
    assert "Retry-After" not in dict(headers)
    assert str(len(big)) in json.loads(body)["error"]
    assert budget.used() == (0, 0)


KEY = "k" * 24


class ReservationCounter(InFlight):
    """An in-flight budget that counts the reservations asked of it."""

    def __init__(self) -> None:
        super().__init__(64 * LIMIT)
        self.asked = 0

    def reserve(self, size: int) -> Any:
        self.asked += 1
        return super().reserve(size)


@pytest.mark.parametrize(
    ("headers", "content_length", "chunked"),
    [
        ({}, str(LIMIT), False),
        ({}, None, True),
        ({"HTTP_AUTHORIZATION": "Bearer wrong-key-wrong-key"}, "10", False),
        ({"HTTP_X_API_KEY": KEY[:-1]}, "10", False),
        ({"HTTP_AUTHORIZATION": f"Bearer {KEY}x"}, str(10 * LIMIT), False),
    ],
    ids=["no key", "no key, chunked", "wrong bearer", "short x-api-key", "longer, too large"],
)
def test_with_api_keys_a_body_without_a_valid_key_is_refused_before_anything_is_held(
    headers: dict[str, str],
    content_length: str | None,
    chunked: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Otherwise a client without a key could fill the in-flight budget with bodies
    declared large and then stalled: every other request would get 503."""
    app = RecordingApp()
    inflight = ReservationCounter()
    environ = {**_environ(UnreadableInput(), content_length, chunked=chunked), **headers}
    limited = BodyLimit(app, LIMIT, READ_TIMEOUT, inflight=inflight, api_keys=(KEY,))
    with caplog.at_level(logging.INFO, logger="pyexec.http"):
        app_iter, status, response_headers = run_wsgi_app(limited, environ)
        body = b"".join(app_iter)
    _assert_error(401, dict(response_headers), body, "unauthorized")
    assert status.startswith("401")
    assert KEY not in body.decode()
    assert (app.calls, inflight.asked, inflight.used()) == (0, 0, (0, 0))
    (record,) = [r for r in caplog.records if r.name == "pyexec.http"]
    assert record.__dict__["fields"] == {"kind": "unauthorized"}


@pytest.mark.parametrize(
    "headers",
    [{"HTTP_AUTHORIZATION": f"Bearer {KEY}"}, {"HTTP_X_API_KEY": KEY}],
    ids=["bearer", "x-api-key"],
)
def test_with_api_keys_a_body_with_a_valid_key_reaches_the_app(headers: dict[str, str]) -> None:
    app = RecordingApp()
    environ = {**_environ(io.BytesIO(b"x" * 10), "10"), **headers}
    limited = BodyLimit(app, LIMIT, READ_TIMEOUT, api_keys=(KEY, "y" * 20))
    _app_iter, status, _headers = run_wsgi_app(limited, environ)
    assert status.startswith("200")
    assert app.body == b"x" * 10


def test_with_api_keys_a_request_without_a_body_is_the_app_s_to_answer() -> None:
    """/healthz and the page take no key: the app decides, as without keys."""
    app = RecordingApp()
    limited = BodyLimit(app, LIMIT, READ_TIMEOUT, api_keys=(KEY,))
    _app_iter, status, _headers = run_wsgi_app(limited, _environ(UnreadableInput(), None))
    assert status.startswith("200")
    assert app.calls == 1
