"""``coerce_result: true``: turn the everyday values JSON cannot hold into JSON ones.

Opt-in, because conversion can change data (a NaN becomes null, a set loses its
order). docs/api.md#coerce_result has the table this module implements; the tests
in tests/unit/test_coerce.py follow it row by row.

This module runs inside the jail, not in the service: the service sends its source
with a request that asks for coercion, and the runner executes it there (it cannot
import from ``pyexec``). So it uses only the standard library, looks numpy and
pandas up in ``sys.modules`` (a script that returns a DataFrame has imported
pandas), and costs nothing to requests that do not ask for it.

``coerce_value(item)`` returns ``(True, replacement)`` when it knows the type, with
a replacement the runner converts again (so a DataFrame's cells are coerced too), or
``(False, None)``; it raises ValueError with a sentence when a value of a known type
cannot be represented (duplicate column labels). ``coerce_key`` does the same for
dict keys.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import enum
import math
import sys
import uuid
from typing import Any

KEY_TEXT = {True: "true", False: "false", None: "null"}


def coerce_float(value: float) -> float | None:
    """NaN and the infinities become null; other floats stay."""
    return None if math.isnan(value) or math.isinf(value) else value


def coerce_key(key: Any) -> str | None:
    """A non-string dict key as its JSON text (int, float, bool, None, and numpy's
    scalars of those), else None."""
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(key, numpy.generic):
        plain = key.item()
        return None if type(plain) is type(key) else coerce_key(plain)
    if key is None or isinstance(key, bool):
        return KEY_TEXT[key]
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        if math.isnan(key) or math.isinf(key):
            return None
        return float.__repr__(key)
    return None


def coerce_value(item: Any) -> tuple[bool, Any]:
    """(True, a value closer to JSON) for a type in the table, else (False, None)."""
    for convert in (_from_pandas, _from_numpy, _from_stdlib):
        known, value = convert(item)
        if known:
            return True, value
    return False, None


def _from_stdlib(item: Any) -> tuple[bool, Any]:
    if isinstance(item, (datetime.datetime, datetime.date, datetime.time)):
        return True, item.isoformat()
    if isinstance(item, datetime.timedelta):
        return True, item.total_seconds()
    if isinstance(item, (decimal.Decimal, uuid.UUID)):
        return True, str(item)
    if isinstance(item, enum.Enum):
        return True, item.value
    if isinstance(item, (set, frozenset)):
        try:
            return True, sorted(item)
        except TypeError:
            return True, list(item)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return True, base64.b64encode(bytes(item)).decode("ascii")
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return True, {field.name: getattr(item, field.name) for field in dataclasses.fields(item)}
    return False, None


def _from_numpy(item: Any) -> tuple[bool, Any]:
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return False, None
    if isinstance(item, numpy.datetime64):
        if numpy.isnat(item):
            return True, None
        return True, str(numpy.datetime_as_string(item))
    if isinstance(item, numpy.timedelta64):
        if numpy.isnat(item):
            return True, None
        return True, float(item / numpy.timedelta64(1, "s"))
    if isinstance(item, numpy.ndarray) and item.dtype.kind in "Mm":
        return True, list(item)  # each element is a datetime64/timedelta64 scalar
    return False, None


def _from_pandas(item: Any) -> tuple[bool, Any]:
    pandas = sys.modules.get("pandas")
    if pandas is None:
        return False, None
    if item is pandas.NaT or item is pandas.NA:
        return True, None
    if isinstance(item, pandas.DataFrame):
        return True, _records(pandas, item)
    if isinstance(item, pandas.Series):
        if _default_index(pandas, item.index):
            return True, list(item)
        return True, _labelled(item)
    return False, None


def _default_index(pandas: Any, index: Any) -> bool:
    """The index pandas gives a frame or series when none is set: 0, 1, 2, ..."""
    return (
        isinstance(index, pandas.RangeIndex)
        and index.start == 0
        and index.step == 1
        and index.name is None
    )


def _records(pandas: Any, frame: Any) -> list[dict[str, Any]]:
    """A frame as a list of records; a set index becomes leading columns."""
    if not _default_index(pandas, frame.index):
        frame = frame.reset_index()
    labels = [str(label) for label in frame.columns]
    if len(set(labels)) != len(labels):
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        raise ValueError(
            f"is a DataFrame with the column label(s) {', '.join(map(repr, repeated))} "
            "more than once (after str() and reset_index()); rename them first"
        )
    return [
        dict(zip(labels, row, strict=True)) for row in frame.itertuples(index=False, name=None)
    ]


def _labelled(series: Any) -> dict[str, Any]:
    """A series with a set index as an object of str(label) -> value."""
    out: dict[str, Any] = {}
    for label, value in series.items():
        key = str(label)
        if key in out:
            raise ValueError(
                f"is a Series whose index has the label {key!r} more than once "
                "(after str()); make the index unique first"
            )
        out[key] = value
    return out
