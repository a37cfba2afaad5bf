"""coerce_result: the standard-library rows of the table in docs/api.md#coerce_result,
through the runner's converter exactly as the jail runs it (the coerce source loaded
with runner._load_coerce). numpy and pandas rows run in a real jail:
tests/integration/test_results.py."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import uuid
from typing import Any

import pytest

from pyexec import runner
from pyexec.payload import COERCE_SOURCE, Payload

COERCE = runner._load_coerce(COERCE_SOURCE)


def coerced(value: Any) -> Any:
    return runner._to_json(value, COERCE)


def report_of(value: Any) -> dict[str, Any]:
    with pytest.raises(runner.Report) as caught:
        coerced(value)
    return caught.value.payload


class Colour(enum.Enum):
    RED = "red"
    NESTED = (1, 2)


@dataclasses.dataclass
class Point:
    x: int
    when: datetime.date


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(
            datetime.datetime(2026, 11, 27, 23, 49, 12, 5),
            "2026-11-27T23:49:12.000005",
            id="datetime",
        ),
        pytest.param(
            datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC),
            "2026-01-02T00:00:00+00:00",
            id="aware datetime",
        ),
        pytest.param(datetime.date(2026, 1, 2), "2026-01-02", id="date"),
        pytest.param(datetime.time(3, 4, 5), "03:04:05", id="time"),
        pytest.param(datetime.timedelta(minutes=1, milliseconds=500), 60.5, id="timedelta"),
        pytest.param(float("nan"), None, id="NaN"),
        pytest.param([float("inf"), float("-inf"), 1.5], [None, None, 1.5], id="infinities"),
        pytest.param(decimal.Decimal("0.10"), "0.10", id="Decimal keeps its digits"),
        pytest.param(
            uuid.UUID("12345678-1234-5678-1234-567812345678"),
            "12345678-1234-5678-1234-567812345678",
            id="UUID",
        ),
        pytest.param(Colour.RED, "red", id="Enum"),
        pytest.param(Colour.NESTED, [1, 2], id="Enum with a tuple value"),
        pytest.param({3, 1, 2}, [1, 2, 3], id="set sorted"),
        pytest.param(frozenset({"b", "a"}), ["a", "b"], id="frozenset sorted"),
        pytest.param(b"\x89PNG", "iVBORw==", id="bytes as base64"),
        pytest.param(bytearray(b"\x00"), "AA==", id="bytearray"),
        pytest.param(memoryview(b"ab"), "YWI=", id="memoryview"),
        pytest.param(
            Point(1, datetime.date(2026, 1, 2)), {"x": 1, "when": "2026-01-02"}, id="dataclass"
        ),
        pytest.param({1: "a", 2.5: "b"}, {"1": "a", "2.5": "b"}, id="int and float keys"),
        pytest.param({True: 1, None: 2}, {"true": 1, "null": 2}, id="bool and None keys"),
        pytest.param(None, None, id="None"),
    ],
)
def test_each_row_of_the_table(value: Any, expected: Any) -> None:
    assert coerced(value) == expected


def test_a_set_of_values_that_cannot_be_compared_keeps_them_all() -> None:
    assert sorted(coerced({1, "a"}), key=str) == [1, "a"]


def test_keys_that_collide_once_they_are_text_are_refused() -> None:
    payload = report_of({1: "int", "1": "str"})
    assert payload["kind"] == "invalid_result"
    assert "has the key '1' twice" in payload["error"]


def test_keys_of_other_types_are_still_refused() -> None:
    payload = report_of({(1, 2): 0})
    assert payload["kind"] == "invalid_result"
    assert payload["type"] == "tuple"


def test_integers_over_4300_digits_stay_refused() -> None:
    payload = report_of(10**4300)
    assert payload["kind"] == "invalid_result"
    assert "4300 digits" in payload["error"]


def test_types_outside_the_table_are_refused_with_their_own_name() -> None:
    class Opaque:
        pass

    payload = report_of([Opaque()])
    assert payload["path"] == "result[0]"
    assert payload["type"].endswith("Opaque")


def test_an_enum_whose_value_is_itself_is_cut_at_the_depth_limit() -> None:
    class Loop(enum.Enum):
        A = 1

    looped = Loop.A
    object.__setattr__(looped, "_value_", looped)
    payload = report_of(looped)
    assert "nested more than 100 levels" in payload["error"]


def test_strict_mode_is_the_default_and_coercion_is_sent_only_when_asked() -> None:
    assert Payload().meta_and_data() == (b"", b"")
    meta, _ = Payload(coerce_result=True).meta_and_data()
    assert b'"coerce": ' in meta
    assert b"def coerce_value" in meta
