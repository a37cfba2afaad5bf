"""The retry policy: only what cannot have run, Retry-After capped, at most three
retries, all within the call's timeout. No server."""

from __future__ import annotations

import pytest

from pyexec_client import (
    AuthError,
    ClientTimeoutError,
    ConnectionFailedError,
    OverloadedError,
    PyexecError,
    RequestError,
    ScriptError,
    ServerError,
    UnavailableError,
)
from pyexec_client._retry import RetryPolicy

POLICY = RetryPolicy()
PLENTY = 90.0


def overloaded(kind: str = "overloaded", retry_after: float | None = 1.0) -> OverloadedError:
    return OverloadedError("Busy.", status=503, kind=kind, retry_after=retry_after)


def refused() -> ConnectionFailedError:
    return ConnectionFailedError("Refused.", request_sent=False)


@pytest.mark.parametrize("kind", ["overloaded", "shutting_down"])
def test_overloaded_and_shutting_down_are_retried_after_retry_after(kind: str) -> None:
    assert POLICY.delay(overloaded(kind, retry_after=2.0), 0, PLENTY) == 2.0


def test_retry_after_is_capped_at_ten_seconds() -> None:
    assert POLICY.delay(overloaded(retry_after=30.0), 0, PLENTY) == 10.0


def test_without_retry_after_the_backoff_applies() -> None:
    assert [POLICY.delay(overloaded(retry_after=None), n, PLENTY) for n in range(3)] == [
        0.5,
        1.0,
        2.0,
    ]


def test_a_connection_that_never_carried_the_request_is_retried_with_backoff() -> None:
    assert [POLICY.delay(refused(), n, PLENTY) for n in range(3)] == [0.5, 1.0, 2.0]


def test_at_most_three_retries() -> None:
    assert POLICY.delay(refused(), 3, PLENTY) is None
    assert POLICY.delay(overloaded(), 3, PLENTY) is None


def test_a_wait_that_leaves_no_time_for_the_next_answer_is_not_taken() -> None:
    assert POLICY.delay(overloaded(retry_after=1.0), 0, 2.0) == 1.0
    assert POLICY.delay(overloaded(retry_after=1.0), 0, 1.9) is None
    assert POLICY.delay(refused(), 0, 1.0) is None


@pytest.mark.parametrize(
    "error",
    [
        ConnectionFailedError("Broke after sending.", request_sent=True),
        ClientTimeoutError("No answer in time."),
        ScriptError("Failed.", status=400, kind="exception", body={}),
        RequestError("Bad.", status=400, kind="bad_request"),
        AuthError("No key.", status=401, kind="unauthorized"),
        UnavailableError("Starting.", status=503, kind="starting", retry_after=2.0),
        UnavailableError("No jail.", status=503, kind="sandbox_unavailable", retry_after=10.0),
        OverloadedError("Proxy says slow down.", status=429, kind=None),
        ServerError("Fault.", status=500, kind="internal_error"),
    ],
    ids=lambda error: f"{type(error).__name__}-{error.kind}",
)
def test_nothing_that_may_have_run_or_needs_a_person_is_retried(error: PyexecError) -> None:
    assert POLICY.delay(error, 0, PLENTY) is None


def test_the_attempt_count_shows_in_the_message() -> None:
    error = overloaded()
    assert str(error) == "Busy."
    error.attempts = 4
    assert str(error) == "Busy. (gave up after 4 attempts)"
