"""gunicorn's gthread worker, answering in JSON the requests gunicorn refuses itself.

gunicorn parses the request line and the headers (and decodes a chunked body) before
the app runs, and answers what it cannot parse itself, with a page of HTML
(``gunicorn.util.write_error``): 400 for a malformed request line or header, 414 for
a request line over ``limit_request_line``, 431 for too many or too large header
fields, 417, 501 ... That broke the contract that every body is JSON of the error
schema, with a ``kind``. ``JsonThreadWorker`` (``worker_class`` in gunicorn.conf.py)
is the gthread worker with only ``handle_error`` replaced:

- the status is the one gunicorn gives (tests/unit/test_gunicorn_worker.py runs
  gunicorn's own ``handle_error`` for every exception it names and compares), and the
  body comes from pyexec.answers, with the kind of that status in
  schemas/error.schema.json;
- the sentence is ours, never the exception's text: gunicorn puts the offending
  request bytes in it (the request line, a header), which a client should not get
  echoed back and which tells it nothing it can act on. Where one exception stands
  for several failures, a constant of gunicorn's (never request bytes) picks the
  sentence;
- the answer closes the connection (gunicorn closes it after ``handle_error``): the
  bytes after a request that could not be parsed cannot be trusted to start the
  next one;
- each refusal gets one structured log line (pyexec.logs' format, instead of
  gunicorn's plain warning that quotes the request) and its id in ``X-Request-Id``,
  as every answer of the app does.

A failure that is the service's own (the app sent an invalid header, an exception
escaped the app) is the generic 500 ``internal_error``, logged with its traceback.
"""

from __future__ import annotations

import http
import logging
import math
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from ssl import SSLError
from typing import Any

from gunicorn import util  # type: ignore[import-untyped]
from gunicorn.http.errors import (  # type: ignore[import-untyped]
    ChunkMissingTerminator,
    ConfigurationProblem,
    ExpectationFailed,
    ForbiddenProxyRequest,
    InvalidChunkExtension,
    InvalidChunkSize,
    InvalidH2CPreface,
    InvalidHeader,
    InvalidHeaderName,
    InvalidHTTPVersion,
    InvalidProxyLine,
    InvalidRequestLine,
    InvalidRequestMethod,
    InvalidResponseHeader,
    InvalidResponseHeaderName,
    InvalidSchemeHeaders,
    LimitRequestHeaders,
    LimitRequestLine,
    ObsoleteFolding,
    UnsupportedTransferCoding,
)
from gunicorn.http.message import (  # type: ignore[import-untyped]
    DEFAULT_MAX_HEADERFIELD_SIZE,
    MAX_HEADERS,
    MAX_REQUEST_LINE,
)
from gunicorn.workers.gthread import ThreadWorker  # type: ignore[import-untyped]

from pyexec import answers
from pyexec.answers import Outcome
from pyexec.deadlines import WATCHDOG
from pyexec.settings import load_settings

log = logging.getLogger("pyexec.server")

# gunicorn_h1c, gunicorn's optional C parser, applies this to limit_request_line = 0
# (which the Python parser reads as "no limit").
FAST_PARSER_LINE_LIMIT = 1024 * 1024
# How often the worker tells the arbiter it is alive (JsonThreadWorker.notify); under
# gunicorn's smallest worker timeout that means anything (2 s).
NOTIFY_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class Limits:
    """The limits gunicorn's parser applies, for the sentences that name them."""

    request_line: int
    fields: int
    field_size: int

    @classmethod
    def from_config(cls, cfg: Any) -> Limits:
        """The configured limits (gunicorn's config refuses negative ones), clamped
        as gunicorn.http.message clamps them: a request line of at most 8190 bytes,
        at most 32768 fields, 0 for a default."""
        line = min(cfg.limit_request_line, MAX_REQUEST_LINE)
        fields = cfg.limit_request_fields
        if fields <= 0 or fields > MAX_HEADERS:
            fields = MAX_HEADERS
        size = cfg.limit_request_field_size
        return cls(
            request_line=line or FAST_PARSER_LINE_LIMIT,
            fields=fields,
            field_size=size if size > 0 else DEFAULT_MAX_HEADERFIELD_SIZE,
        )


@dataclass(frozen=True)
class Rule:
    """The answer to one family of gunicorn's exceptions.

    ``message`` may name the limits (``{line}``, ``{fields}``, ``{field_size}``).
    When one exception class stands for several failures, ``detail`` names the
    attribute that tells them apart and ``messages`` holds a sentence per value; the
    attribute's value is only looked up, never put into the answer.
    """

    classes: tuple[type[BaseException], ...]
    kind: str
    message: str
    detail: str = ""
    messages: Mapping[str, str] = field(default_factory=dict)

    def sentence(self, exc: BaseException, limits: Limits) -> str:
        """The sentence for ``exc``, with the limits filled in."""
        template = self.message
        if self.detail:
            template = self.messages.get(str(getattr(exc, self.detail, "")), template)
        return template.format(
            line=limits.request_line, fields=limits.fields, field_size=limits.field_size
        )


# Faults of the service, not of the request: gunicorn answers them 500 too.
SERVICE_FAULTS = (InvalidResponseHeader, InvalidResponseHeaderName, ConfigurationProblem)

# Every exception gunicorn's handle_error answers as the client's fault, in the order
# they are tried (gunicorn's own order). Anything else is a 500.
RULES = (
    Rule(
        (LimitRequestLine,),
        "uri_too_long",
        "The request line is longer than {line} bytes; "
        "send large data in the body of a POST instead.",
    ),
    Rule(
        (LimitRequestHeaders,),
        "headers_too_large",
        "The request's headers are too large: at most {fields} header fields "
        "of at most {field_size} bytes each.",
        detail="msg",
        messages={
            "limit request headers fields": "The request has more than {fields} header fields.",
            "limit request headers fields size": (
                "A header field is longer than {field_size} bytes."
            ),
            "limit request trailer section size": (
                "The trailer section of the chunked body is too large."
            ),
        },
    ),
    Rule(
        (InvalidRequestLine,),
        "bad_request",
        "The request line is not valid: send 'METHOD /path HTTP/1.1' in printable "
        "ASCII, ending in CRLF.",
    ),
    Rule(
        (InvalidRequestMethod,),
        "bad_request",
        "The request method is not valid: methods are upper case, e.g. POST /execute "
        "or GET /healthz.",
    ),
    Rule(
        (InvalidHTTPVersion,),
        "bad_request",
        "The HTTP version is not supported: send HTTP/1.1 (or HTTP/1.0).",
    ),
    Rule(
        (InvalidHeaderName,),
        "bad_request",
        "A header name is not valid: a name is letters, digits and !#$%&'*+-.^`|~ "
        "(no underscore, no space), followed directly by a colon.",
    ),
    Rule(
        (ObsoleteFolding,),
        "bad_request",
        "A header value continues on a second line (obsolete line folding): "
        "send each header on one line.",
    ),
    Rule(
        (InvalidHeader,),
        "bad_request",
        "A header is not valid: each is 'Name: value' on a line ending in CRLF, with "
        "no control characters, and a header such as Host or Content-Type is sent once.",
        detail="hdr",
        messages={
            "CONTENT-LENGTH": (
                "The Content-Length header is not valid: send it once, as a decimal "
                "number, and not together with Transfer-Encoding."
            ),
            "TRANSFER-ENCODING": (
                "The Transfer-Encoding header is not valid: end it with chunked, once, "
                "in an HTTP/1.1 request; or send Content-Length instead."
            ),
        },
    ),
    Rule(
        (InvalidSchemeHeaders,),
        "bad_request",
        "The headers that give the request's scheme (such as X-Forwarded-Proto) "
        "contradict each other.",
    ),
    Rule(
        (InvalidChunkSize, ChunkMissingTerminator, InvalidChunkExtension),
        "bad_request",
        "The chunked body is not valid: each chunk is its size in hex, CRLF, the "
        "data and CRLF, and a chunk of size 0 ends the body.",
    ),
    Rule((InvalidProxyLine,), "bad_request", "The PROXY protocol line is not valid."),
    Rule((InvalidH2CPreface,), "bad_request", "The HTTP/2 connection preface is not valid."),
    Rule(
        (ExpectationFailed,),
        "expectation_failed",
        "The server can meet no Expect but 100-continue; send the request without it.",
    ),
    Rule(
        (UnsupportedTransferCoding,),
        "unsupported_transfer_coding",
        "The Transfer-Encoding is not supported: send the body with Content-Length, "
        "or with Transfer-Encoding: chunked.",
    ),
    Rule(
        (ForbiddenProxyRequest, SSLError),
        "forbidden",
        "The server refused this connection before reading a request.",
    ),
)


def answer_for(exc: BaseException, limits: Limits) -> Outcome:
    """The JSON answer to an exception gunicorn hands to ``handle_error``."""
    if not isinstance(exc, SERVICE_FAULTS):
        for rule in RULES:
            if isinstance(exc, rule.classes):
                return answers.error(rule.kind, rule.sentence(exc, limits))
    return answers.internal_error()


def to_http(outcome: Outcome, request_id: str) -> bytes:
    """The whole HTTP/1.1 answer: status line, headers and the JSON body; it tells
    the client that the connection closes."""
    body = answers.encode(outcome.body)
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
        ("X-Request-Id", request_id),
        *outcome.headers,
    ]
    head = f"HTTP/1.1 {outcome.status} {http.HTTPStatus(outcome.status).phrase}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers)
    return f"{head}\r\n".encode("latin-1") + body


def log_refusal(outcome: Outcome, exc: BaseException, request_id: str) -> None:
    """One log line per refusal, like the app's line per request: the exception's
    class but not its text (the request's bytes); a traceback for a 500 only."""
    kind = outcome.body["kind"]
    internal = kind == "internal_error"
    fields = {
        "request_id": request_id,
        "httpRequest": {"status": outcome.status},
        "kind": kind,
        "refused_by": "gunicorn",
        "exception": type(exc).__name__,
    }
    log.log(
        logging.ERROR if internal else logging.INFO,
        "request refused before the app: %d %s (%s)",
        outcome.status,
        kind,
        type(exc).__name__,
        extra={"fields": fields},
        exc_info=exc if internal else None,
    )


def peek(sock: socket.socket) -> str:
    """What a socket holds now, without taking anything or waiting: ``"bytes"`` to
    read, ``"ended"`` (the peer closed or reset it, nothing left to read), or
    ``"nothing"`` yet; also ``"nothing"`` for a socket that cannot be peeked at (TLS)."""
    try:
        return "bytes" if sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) else "ended"
    except (BlockingIOError, ValueError):  # ValueError: an ssl.SSLSocket takes no flags
        return "nothing"
    except OSError:  # reset by the peer: nothing more will come
        return "ended"


class JsonThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker whose own error answers are JSON of the error schema,
    and whose request heads must arrive within a deadline.

    gunicorn reads a request's line and headers from a blocking socket with no
    timeout: a client that sends half a head and stalls holds a worker thread for as
    long as it likes. Each head gets ``PYEXEC_BODY_TIMEOUT`` seconds; then the
    watchdog (pyexec.deadlines) shuts the socket down, gunicorn sees the end of the
    stream and drops the connection, and a warning line says so. The body and the
    answer have deadlines of their own (pyexec.bodylimit).
    """

    head_seconds: float = 10.0
    pyexec_notified_at: float = -math.inf  # when notify last told the arbiter

    def on_client_socket_readable(self, conn: Any, client: socket.socket) -> None:
        """A kept-alive connection woke the main loop: when the client has closed it
        (what curl and most one-shot clients do after their answer), close it here.

        gthread would hand it to a worker thread, whose parser then meets the end of
        the stream and hands it back to be closed: two thread hops and a head
        deadline for nothing, on every such connection (issue 20). A connection
        with bytes to read, or one that cannot be peeked at (TLS), goes on to gthread.
        """
        if peek(client) == "ended":
            self.poller.unregister(client)
            self.keepalived_conns.remove(conn)
            self.nr_conns -= 1
            conn.close()
            return
        super().on_client_socket_readable(conn, client)

    def init_process(self) -> None:
        """Read the head deadline from the settings, in the worker process."""
        self.head_seconds = load_settings().body_timeout_seconds
        super().init_process()

    def notify(self) -> None:
        """gunicorn's heartbeat to the arbiter (a utime on a file), at most once per
        NOTIFY_INTERVAL_SECONDS: the main loop calls it on every event, three per
        request, and the arbiter looks once per ``timeout`` (0 here: never)."""
        now = time.monotonic()
        if now - self.pyexec_notified_at >= NOTIFY_INTERVAL_SECONDS:
            self.pyexec_notified_at = now
            super().notify()

    def handle(self, conn: Any) -> Any:
        """gthread's ``handle``, with a deadline on the request's head.

        A new connection whose request has already arrived (as it has by the time a
        thread takes it, almost always) is marked so, which spares gthread's wait
        for it: an epoll instance made, used and closed per connection.
        """
        if not conn.initialized and not conn.data_ready and peek(conn.sock) == "bytes":
            conn.data_ready = True
        conn.pyexec_head_watch = WATCHDOG.watch(conn.sock, self.head_seconds, socket.SHUT_RD)
        conn.pyexec_head_started = time.monotonic()
        try:
            return super().handle(conn)
        finally:
            self._head_done(conn)

    def handle_request(self, req: Any, conn: Any) -> Any:
        """The head has arrived: stop its clock before the app runs."""
        self._head_done(conn)
        return super().handle_request(req, conn)

    @staticmethod
    def _head_done(conn: Any) -> None:
        watch = getattr(conn, "pyexec_head_watch", None)
        if watch is None:
            return
        conn.pyexec_head_watch = None
        if WATCHDOG.cancel(watch):
            log.warning(
                "request head deadline passed after %.1f s",
                time.monotonic() - conn.pyexec_head_started,
                extra={"fields": {"kind": "head_timeout"}},
            )

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        """Answer ``exc`` in JSON on ``client``; gunicorn closes the connection next.

        Replaces gunicorn's ``handle_error`` whole (it writes HTML). ``req`` (the
        request, when its head was parsed) and ``addr`` are not used: the answer must
        not depend on what the request said.
        """
        outcome = answer_for(exc, Limits.from_config(self.cfg))
        request_id = uuid.uuid4().hex
        log_refusal(outcome, exc, request_id)
        try:
            util.write_nonblock(client, to_http(outcome, request_id))
        except OSError:  # the client is gone: nobody to answer
            log.debug("could not send the refusal", exc_info=True)
