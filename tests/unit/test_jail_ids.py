"""pyexec.jail_ids: one outer id per live jail, round-robin, never 0 or 65534."""

from __future__ import annotations

import threading

import pytest

from pyexec.jail_ids import (
    JAIL_ID_BASE,
    JAIL_ID_COUNT,
    JAIL_IDS,
    JailIds,
    JailIdsExhausted,
    mapping_args,
)


def test_ids_are_distinct_while_taken() -> None:
    ids = JailIds()
    taken = [ids.take() for _ in range(50)]
    assert len(set(taken)) == 50
    assert all(JAIL_ID_BASE <= outer < JAIL_ID_BASE + JAIL_ID_COUNT for outer in taken)
    assert ids.in_use() == 50


def test_a_given_back_id_is_not_reused_until_the_range_goes_round() -> None:
    ids = JailIds(base=1000, count=4)
    first = ids.take()
    ids.give_back(first)
    assert [ids.take() for _ in range(3)] == [1001, 1002, 1003]
    assert ids.take() == first  # the range went round; 1000 was free again


def test_taken_ids_are_skipped_when_the_range_goes_round() -> None:
    ids = JailIds(base=1000, count=3)
    kept = ids.take()
    for outer in (ids.take(), ids.take()):
        ids.give_back(outer)
    assert ids.take() != kept
    assert ids.take() != kept


def test_a_full_range_raises_rather_than_sharing_an_id() -> None:
    ids = JailIds(base=1000, count=2)
    ids.take()
    ids.take()
    with pytest.raises(JailIdsExhausted):
        ids.take()


def test_giving_back_an_unknown_id_changes_nothing() -> None:
    ids = JailIds(base=1000, count=2)
    ids.take()
    ids.give_back(5)
    assert ids.in_use() == 1


def test_the_range_holds_neither_root_nor_nobody() -> None:
    assert 0 not in range(JAIL_ID_BASE, JAIL_ID_BASE + JAIL_ID_COUNT)
    assert 65534 not in range(JAIL_ID_BASE, JAIL_ID_BASE + JAIL_ID_COUNT)
    assert JAIL_IDS.base == JAIL_ID_BASE


def test_threads_taking_at_once_never_get_the_same_id() -> None:
    ids = JailIds()
    got: list[int] = []
    lock = threading.Lock()

    def grab() -> None:
        mine = [ids.take() for _ in range(200)]
        with lock:
            got.extend(mine)

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == len(set(got)) == 1600


def test_the_mapping_maps_nobody_inside_to_the_id_for_uid_and_gid() -> None:
    assert mapping_args(100_042) == ["--user", "65534:100042:1", "--group", "65534:100042:1"]
