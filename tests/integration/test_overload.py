"""Admission under overload: 503 with Retry-After once every slot or the memory budget
stays busy, and no request lost. Services of their own, real jails."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pyexec.answers import Outcome
from pyexec.api import Service
from tests.support import call, check_schema, script, wait_healthy


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
    time.sleep(0.8)
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


def test_memory_budget_bounds_the_sum_of_running_jails(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(
        **{
            "PYEXEC_MEMORY_BUDGET_MB": "768",
            "PYEXEC_MAX_MEMORY_MB": "512",
            "PYEXEC_QUEUE_WAIT": "0.3",
            "PYEXEC_POOL_SIZE": "0",
        }
    )
    wait_healthy(service)
    answers: dict[str, Outcome] = {}

    def big() -> None:
        answers["big"] = call(service, {"script": script("sleep_two_seconds"), "memory_mb": 512})

    thread = threading.Thread(target=big)
    thread.start()
    time.sleep(0.8)
    second = call(service, {"script": script("hello"), "memory_mb": 512})
    small = call(service, {"script": script("hello")})  # 256 MB still fits
    thread.join()
    assert (second.status, second.body["kind"]) == (503, "overloaded")
    assert "768 MB" in second.body["error"]
    assert small.status == 200
    assert answers["big"].status == 200
