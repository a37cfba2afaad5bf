"""Retries against a saturated instance for real: one slot, no queue, a sleeping script
holding the slot. A retry that finds the slot free succeeds; retries that do not
end in OverloadedError, after at most three of them and within the client's timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from live import Server, run_cli, script, serve

from pyexec_client import Client, ExecuteResult, OverloadedError, PyexecError


@pytest.fixture(scope="module")
def one_slot() -> Iterator[Server]:
    with serve(PYEXEC_MAX_CONCURRENT="1", PYEXEC_MAX_QUEUE="0", PYEXEC_QUEUE_WAIT="0") as running:
        yield running


class Sleeper:
    """A script holding the server's only slot for ``seconds``, in a thread."""

    def __init__(self, server: Server, seconds: float) -> None:
        self.answer: ExecuteResult | PyexecError | None = None
        self._thread = threading.Thread(target=self._run, args=(server.base, seconds))
        self._thread.start()
        self._wait_until_busy(server)

    def _run(self, url: str, seconds: float) -> None:
        with Client(url) as client:
            try:
                self.answer = client.execute(script("sleep"), input=seconds)
            except PyexecError as error:
                self.answer = error

    def _wait_until_busy(self, server: Server) -> None:
        """Until a probe without retries is refused (the sleeper holds the slot)."""
        deadline = time.monotonic() + 30
        with Client(server.base, timeout=0.9) as probe:  # too short for any retry
            while time.monotonic() < deadline:
                try:
                    probe.execute("def main():\n    return 1\n")
                except OverloadedError:
                    return
                time.sleep(0.05)
        raise AssertionError("the sleeping script never held the slot")

    def join(self) -> ExecuteResult | PyexecError | None:
        """The sleeping script's own answer, once it has it."""
        self._thread.join()
        return self.answer


def test_a_retry_after_retry_after_gets_the_freed_slot(one_slot: Server) -> None:
    sleeper = Sleeper(one_slot, 1.5)
    started = time.monotonic()
    with Client(one_slot.base, timeout=30) as client:
        answer = client.execute(script("hello"))
    assert answer.result == {"hello": "world"}
    assert time.monotonic() - started >= 0.9  # it waited Retry-After (1 s) at least once
    finished = sleeper.join()
    assert isinstance(finished, ExecuteResult)
    assert finished.result == "slept"


def test_retries_stop_after_three_and_within_the_timeout(one_slot: Server) -> None:
    sleeper = Sleeper(one_slot, 7)
    started = time.monotonic()
    with Client(one_slot.base, timeout=2.5) as short, pytest.raises(OverloadedError) as caught:
        short.execute(script("hello"))
    # Attempts at 0 s and 1 s; a third one, at 2 s, would leave less than 1 s for it.
    assert caught.value.attempts == 2
    assert time.monotonic() - started < 2.5
    started = time.monotonic()
    with Client(one_slot.base, timeout=90) as patient, pytest.raises(OverloadedError) as caught:
        patient.execute(script("hello"))
    assert (caught.value.attempts, caught.value.kind, caught.value.retry_after) == (
        4,
        "overloaded",
        1.0,
    )
    assert 2.9 < time.monotonic() - started < 5
    assert "gave up after 4 attempts" in str(caught.value)
    busy = run_cli("run", "-", "--url", one_slot.base, "--http-timeout", "1", stdin="x = 1\n")
    assert busy.returncode == 4
    assert "overloaded" in busy.stderr
    assert isinstance(sleeper.join(), ExecuteResult)
