"""The service's exceptions: one base, one subclass per failure a client can be told about.

The core raises them; ``pyexec.answers`` turns each into its HTTP answer, in one
place. Each class names its ``kind`` (a ``const`` of ``schemas/error.schema.json``,
which also gives its status); the message is the one sentence a user reads, so it
never holds paths, nsjail's log or other internals. ``details`` are the extra
machine-readable fields of the error body.
"""

from __future__ import annotations

from typing import Any, ClassVar


class PyexecError(Exception):
    """Base of every failure the service answers for; ``kind`` picks the status."""

    kind: ClassVar[str] = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class RequestError(PyexecError):
    """The request body does not match schemas/request.schema.json, or its input or
    files break a rule (``details``: ``field``, ``maximum``, ``index``, ``path``)."""

    kind = "bad_request"


class InvalidJson(RequestError):
    """The body is not JSON (or not UTF-8, or nested too deeply)."""

    kind = "invalid_json"


class UnsupportedMediaType(PyexecError):
    """The body is not sent as application/json."""

    kind = "unsupported_media_type"


class BodyTooLarge(PyexecError):
    """The body is over PYEXEC_MAX_BODY_BYTES."""

    kind = "body_too_large"


class AnswerTooLarge(PyexecError):
    """The answer is larger than the in-flight budget can ever hold for one answer
    (PYEXEC_INFLIGHT_MB): retrying cannot help."""

    kind = "answer_too_large"


class RequestTimeout(PyexecError):
    """The body did not arrive within PYEXEC_BODY_TIMEOUT."""

    kind = "request_timeout"


class Unauthorized(PyexecError):
    """API keys are on and the request had no matching one."""

    kind = "unauthorized"


class Overloaded(PyexecError):
    """Every slot (or the memory budget) stayed busy for the whole queue wait."""

    kind = "overloaded"


class ShuttingDown(PyexecError):
    """The instance has begun to shut down."""

    kind = "shutting_down"


class SandboxStarting(PyexecError):
    """The start-up self-test has not finished yet."""

    kind = "starting"


class SandboxUnavailable(PyexecError):
    """No jail can run on this instance; the message names the cause and the fix."""

    kind = "sandbox_unavailable"


class JailStartError(PyexecError):
    """A jail did not come up. The message is nsjail's, for operators only: the
    executor logs it and raises a SandboxUnavailable built from its diagnosis instead.
    Should one ever reach an answer, it is the generic 500 (no internals)."""

    kind = "internal_error"


class JailStartTimeout(JailStartError):
    """A jail was still starting at its deadline: on a host that passed its self-test
    this means the host is too busy (the executor answers 503 overloaded), not that
    the sandbox cannot work."""


class JailUsedError(PyexecError):
    """A jail was asked to run a second script, before it was ready, or with a
    memory limit it was not started with: a fault of the service (500)."""

    kind = "internal_error"


class SettingsError(PyexecError, ValueError):
    """A PYEXEC_* variable has a value the service cannot use (raised at start-up)."""

    kind = "internal_error"
