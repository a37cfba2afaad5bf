"""Admission under overload: 503 with Retry-After once every slot or the memory budget
stays busy, and no request lost. Services of their own, real jails."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pyexec.answers import Outcome
from pyexec.api import Service
from pyexec.spawn import REAPER
from tests.support import call, check_schema, internals_in, script, wait_healthy, wait_until


def test_overload_gets_503_with_retry_after_and_no_lost_request(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(
        **{"PYEXEC_MAX_CONCURRENT": "1", "PYEXEC_QUEUE_WAIT": "0.3", "PYEXEC_POOL_SIZE": "0"}
    )
    wait_healthy(service)
    answers: dict[str, Outcome] = {}

    def slow() -> None:
        answers["slow"] = call(service, {"script": script("sleep_two_seconds")})

    thread = threading.Thread(target=slow)
    thread.start()
    wait_until(lambda: service.executor.running() == 1, "the slow script to be running")
    busy = call(service, {"script": script("hello")})
    thread.join()
    assert busy.status == 503
    check_schema(503, busy.body)
    assert busy.body["kind"] == "overloaded"
    assert "maximum of 1 scripts" in busy.body["error"]
    assert dict(busy.headers)["Retry-After"] == "1"
    assert answers["slow"].status == 200
    assert answers["slow"].body["result"] == "slept"
    after = call(service, {"script": script("hello")})
    assert (after.status, after.body["result"]) == (200, {"hello": "world"})


def test_two_big_requests_cannot_lock_out_a_default_size_one(
    make_service: Callable[..., Service],
) -> None:
    """Requests above the default memory together hold at most half of the budget
    (2048 MB by default): a second 1024 MB run is refused, a default one still runs."""
    service = make_service(PYEXEC_QUEUE_WAIT="0.3", PYEXEC_POOL_SIZE="0")
    wait_healthy(service)
    answers: dict[str, Outcome] = {}

    def big() -> None:
        answers["big"] = call(service, {"script": script("sleep_two_seconds"), "memory_mb": 1024})

    thread = threading.Thread(target=big)
    thread.start()
    wait_until(lambda: service.executor.running() == 1, "the big script to be running")
    second = call(service, {"script": script("hello"), "memory_mb": 1024})
    default = call(service, {"script": script("hello")})
    thread.join()
    assert (second.status, second.body["kind"]) == (503, "overloaded")
    assert "1024 MB of jails above the default 256 MB" in second.body["error"]
    assert default.status == 200
    assert answers["big"].status == 200


def test_a_jail_that_lingers_after_its_answer_keeps_its_slot_until_torn_down(
    make_service: Callable[..., Service],
) -> None:
    """A script that reports early and keeps running gets its answer at once, but its
    jail holds the one slot until the service has torn it down."""
    service = make_service(PYEXEC_MAX_CONCURRENT="1", PYEXEC_MAX_QUEUE="0", PYEXEC_POOL_SIZE="0")
    wait_healthy(service)
    lingering = call(service, {"script": script("linger_after_report")})
    assert (lingering.status, lingering.body.get("result")) == (200, "early"), lingering.body
    refused = call(service, {"script": script("hello")})
    assert (refused.status, refused.body["kind"]) == (503, "overloaded")
    assert REAPER.wait_idle(timeout=30)
    after = call(service, {"script": script("hello")})
    assert after.status == 200


def test_a_full_queue_refuses_at_once_and_the_running_script_still_finishes(
    make_service: Callable[..., Service],
) -> None:
    """No queue at all (PYEXEC_MAX_QUEUE=0): with the one slot taken, a request is
    refused at once, not after the queue wait (30 s here, so "at once" is plain)."""
    service = make_service(
        PYEXEC_MAX_CONCURRENT="1",
        PYEXEC_MAX_QUEUE="0",
        PYEXEC_QUEUE_WAIT="30",
        PYEXEC_POOL_SIZE="0",
    )
    wait_healthy(service)
    answers: dict[str, Outcome] = {}

    def slow() -> None:
        answers["slow"] = call(service, {"script": script("sleep_two_seconds")})

    thread = threading.Thread(target=slow)
    thread.start()
    wait_until(lambda: service.executor.running() == 1, "the slow script to be running")
    started = time.monotonic()
    refused = call(service, {"script": script("hello")})
    waited = time.monotonic() - started
    thread.join()
    assert refused.status == 503
    check_schema(503, refused.body)
    assert refused.body["kind"] == "overloaded"
    assert "maximum of 1 scripts" in refused.body["error"]
    assert internals_in(refused.body) == []
    assert dict(refused.headers)["Retry-After"] == "1"
    assert waited < service.settings.queue_wait_seconds / 3
    assert answers["slow"].status == 200
    check_schema(200, answers["slow"].body)
    assert answers["slow"].body["result"] == "slept"
