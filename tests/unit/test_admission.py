"""pyexec.admission: slots, the bounded queue and the memory budget.

Order comes from events, not sleeps: a holder thread signals once it is inside
``admit`` and leaves only when told to; ``Admission.waiting()`` says when a waiter is
queued. The only waits measured are the queue waits themselves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from pyexec.admission import Admission
from pyexec.errors import Overloaded
from pyexec.settings import load_settings

EVENT_TIMEOUT = 5.0
QUEUE_WAIT = 0.2
BUDGET_MB = 1024
LARGE_MB = BUDGET_MB // 2  # what requests above the default memory (64) may hold together


def make_admission(queue_wait: float = QUEUE_WAIT) -> Admission:
    return Admission(
        load_settings(
            {
                "PYEXEC_MAX_CONCURRENT": "2",
                "PYEXEC_MAX_QUEUE": "1",
                "PYEXEC_QUEUE_WAIT": str(queue_wait),
                "PYEXEC_MEMORY_MB": "64",
                "PYEXEC_MAX_MEMORY_MB": "512",
                "PYEXEC_MEMORY_BUDGET_MB": str(BUDGET_MB),
            }
        )
    )


class Holder:
    """A thread that enters ``admit(memory_mb)`` and stays inside until released."""

    def __init__(self, admission: Admission, memory_mb: int = 64) -> None:
        self.inside = threading.Event()
        self.done = threading.Event()
        self.refused: Overloaded | None = None
        self._release = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(admission, memory_mb), daemon=True)
        self._thread.start()

    def _run(self, admission: Admission, memory_mb: int) -> None:
        try:
            with admission.admit(memory_mb):
                self.inside.set()
                self._release.wait(EVENT_TIMEOUT)
        except Overloaded as exc:
            self.refused = exc
        finally:
            self.done.set()

    def entered(self) -> bool:
        return self.inside.wait(EVENT_TIMEOUT)

    def release(self) -> None:
        self._release.set()
        self._thread.join(EVENT_TIMEOUT)
        assert not self._thread.is_alive()


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    """Holders a test starts; every one is released at the end, whatever happened."""
    started: list[Holder] = []
    yield started
    for holder in started:
        holder.release()


def wait_until_queued(admission: Admission, count: int = 1) -> None:
    deadline = time.monotonic() + EVENT_TIMEOUT
    while admission.waiting() < count:
        assert time.monotonic() < deadline, "no waiter was queued"
        time.sleep(0.001)


def test_up_to_max_concurrent_scripts_are_admitted_at_once(holders: list[Holder]) -> None:
    admission = make_admission()
    holders += [Holder(admission), Holder(admission)]
    assert all(holder.entered() for holder in holders)
    assert admission.waiting() == 0


def test_one_more_waits_the_queue_wait_then_is_refused(holders: list[Holder]) -> None:
    admission = make_admission()
    holders += [Holder(admission), Holder(admission)]
    assert all(holder.entered() for holder in holders)
    started = time.monotonic()
    with pytest.raises(Overloaded), admission.admit(64):
        pass
    assert time.monotonic() - started >= QUEUE_WAIT * 0.9
    assert admission.waiting() == 0


def test_a_full_queue_refuses_at_once(holders: list[Holder]) -> None:
    # A long queue wait, so that "at once" cannot be mistaken for a short wait.
    admission = make_admission(queue_wait=5.0)
    holders += [Holder(admission), Holder(admission)]
    assert all(holder.entered() for holder in holders)
    holders.append(Holder(admission))  # the one queued request
    wait_until_queued(admission)
    started = time.monotonic()
    with pytest.raises(Overloaded), admission.admit(64):
        pass
    assert time.monotonic() - started < 0.5


def test_a_queued_request_gets_the_slot_that_frees(holders: list[Holder]) -> None:
    admission = make_admission(queue_wait=5.0)
    first, second = Holder(admission), Holder(admission)
    holders += [first, second]
    assert first.entered()
    assert second.entered()
    waiter = Holder(admission)
    holders.append(waiter)
    wait_until_queued(admission)
    assert not waiter.inside.is_set()
    first.release()
    assert waiter.entered()
    assert waiter.refused is None
    assert admission.waiting() == 0


def test_the_memory_budget_refuses_a_reservation_that_does_not_fit(
    holders: list[Holder],
) -> None:
    admission = make_admission()
    holders.append(Holder(admission, memory_mb=400))
    assert holders[0].entered()
    started = time.monotonic()
    with pytest.raises(Overloaded), admission.admit(LARGE_MB - 400 + 1):
        pass
    assert time.monotonic() - started >= QUEUE_WAIT * 0.9


def test_the_memory_budget_admits_a_reservation_that_fits(holders: list[Holder]) -> None:
    admission = make_admission()
    holders.append(Holder(admission, memory_mb=400))
    assert holders[0].entered()
    started = time.monotonic()
    with admission.admit(LARGE_MB - 400):
        assert time.monotonic() - started < QUEUE_WAIT


def test_a_reservation_waits_for_memory_that_frees(holders: list[Holder]) -> None:
    admission = make_admission(queue_wait=5.0)
    big = Holder(admission, memory_mb=LARGE_MB)
    holders.append(big)
    assert big.entered()
    second = Holder(admission, memory_mb=LARGE_MB)
    holders.append(second)
    assert not second.inside.wait(0.05)
    big.release()
    assert second.entered()


def test_slots_and_memory_come_back_when_the_body_raises() -> None:
    admission = make_admission()
    for _ in range(3):  # more than there are slots
        with pytest.raises(RuntimeError), admission.admit(LARGE_MB):
            raise RuntimeError("the run failed")
    started = time.monotonic()
    with admission.admit(LARGE_MB // 2), admission.admit(LARGE_MB // 2):
        assert time.monotonic() - started < QUEUE_WAIT


def test_a_memory_refusal_gives_its_slot_back(holders: list[Holder]) -> None:
    admission = make_admission()
    holders.append(Holder(admission, memory_mb=LARGE_MB))
    assert holders[0].entered()
    with pytest.raises(Overloaded), admission.admit(65):
        pass
    holders.pop().release()
    started = time.monotonic()
    with admission.admit(65), admission.admit(65):
        assert time.monotonic() - started < QUEUE_WAIT


def test_overloaded_names_the_maximum_and_the_memory_budget(holders: list[Holder]) -> None:
    admission = make_admission()
    holders += [Holder(admission), Holder(admission)]
    assert all(holder.entered() for holder in holders)
    with pytest.raises(Overloaded) as caught, admission.admit(64):
        pass
    assert caught.value.kind == "overloaded"
    assert "maximum of 2 scripts" in caught.value.message
    assert f"{LARGE_MB} MB" in caught.value.message
    assert "64 MB" in caught.value.message


def test_a_default_size_request_is_never_refused_for_memory_while_a_slot_is_free(
    holders: list[Holder],
) -> None:
    admission = make_admission()
    holders.append(Holder(admission, memory_mb=LARGE_MB))  # all the big requests' half
    assert holders[0].entered()
    started = time.monotonic()
    with admission.admit(64):
        assert time.monotonic() - started < QUEUE_WAIT


def test_big_requests_together_hold_at_most_half_the_budget(holders: list[Holder]) -> None:
    admission = make_admission()
    holders.append(Holder(admission, memory_mb=LARGE_MB // 2 + 1))
    assert holders[0].entered()
    with pytest.raises(Overloaded), admission.admit(LARGE_MB // 2):
        pass


def test_a_ticket_holds_its_slot_until_released_from_another_thread() -> None:
    admission = make_admission()
    tickets = [admission.acquire(LARGE_MB), admission.acquire(64)]
    with pytest.raises(Overloaded), admission.admit(64):
        pass  # both slots are held
    releaser = threading.Thread(target=tickets[0].release)
    releaser.start()
    releaser.join()
    tickets[0].release()  # a second release changes nothing
    with admission.admit(LARGE_MB), pytest.raises(Overloaded), admission.admit(64):
        pass
    tickets[1].release()
