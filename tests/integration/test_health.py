"""/healthz over the service's life: 503 `starting` while the start-up self-test runs,
then 200 with the cgroup mode and the pool."""

from __future__ import annotations

from collections.abc import Callable

from pyexec.api import Service
from tests.support import answer_health, check_schema, internals_in, wait_healthy


def test_healthz_is_503_starting_until_the_self_test_has_passed(
    make_service: Callable[..., Service],
) -> None:
    # The self-test starts a cold jail that imports numpy and pandas: it cannot have
    # passed by the time the first /healthz (which starts it) answers.
    service = make_service(PYEXEC_POOL_SIZE="0")
    early = answer_health(service)
    assert early.status == 503
    check_schema(503, early.body)
    assert early.body == {
        "error": "The sandbox's start-up self-test is still running; retry.",
        "kind": "starting",
    }
    assert internals_in(early.body) == []
    assert dict(early.headers)["Retry-After"] == "2"
    wait_healthy(service)
    healthy = answer_health(service)
    assert healthy.status == 200
    check_schema(200, healthy.body, "health")
    assert healthy.body == {
        "status": "ok",
        "cgroups": service.executor.cgroups.mode,
        "pool": {"light": 0, "heavy": 0, "chart": 0},
        **service.executor.enforcement(),
    }
