"""pyexec.inflight: the byte budget for bodies and unsent answers."""

from __future__ import annotations

import threading

from pyexec.inflight import LARGE_BYTES, InFlight

MIB = 1024 * 1024


def test_reservations_fit_until_the_budget_is_full_and_release_gives_back() -> None:
    budget = InFlight(3 * 1000)
    first = budget.reserve(1000)
    second = budget.reserve(2000)
    assert first is not None
    assert second is not None
    assert budget.reserve(1) is None
    assert budget.used() == (3000, 0)
    first.release()
    assert budget.reserve(1000) is not None


def test_release_is_idempotent() -> None:
    budget = InFlight(1000)
    held = budget.reserve(600)
    assert held is not None
    held.release()
    held.release()
    assert budget.used() == (0, 0)
    assert budget.reserve(1000) is not None


def test_large_reservations_share_half_the_budget_and_small_ones_still_fit() -> None:
    """Clients of big answers fill only their half: everyday requests keep the rest."""
    budget = InFlight(16 * MIB)
    big = [budget.reserve(3 * MIB) for _ in range(3)]
    assert big[0] is not None
    assert big[1] is not None
    assert big[2] is None  # 9 MB would pass the 8 MB half
    small = [budget.reserve(LARGE_BYTES) for _ in range(8)]
    assert all(held is not None for held in small)  # 1 MB is not "large"
    assert budget.used() == (14 * MIB, 6 * MIB)
    assert budget.reserve(3 * MIB) is None  # the whole budget is the bound too


def test_concurrent_reserve_and_release_balance_out() -> None:
    budget = InFlight(64 * 1024)

    def churn() -> None:
        for _ in range(2000):
            held = budget.reserve(1024)
            if held is not None:
                held.release()

    threads = [threading.Thread(target=churn) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert budget.used() == (0, 0)


def test_could_ever_fit_tells_a_final_refusal_from_a_busy_budget() -> None:
    budget = InFlight(16 * MIB)
    assert budget.could_ever_fit(8 * MIB)
    assert not budget.could_ever_fit(8 * MIB + 1)
    assert budget.could_ever_fit(LARGE_BYTES)
    held = budget.reserve(8 * MIB)
    assert held is not None
    assert budget.reserve(8 * MIB) is None  # busy now ...
    assert budget.could_ever_fit(8 * MIB)  # ... but not for ever
