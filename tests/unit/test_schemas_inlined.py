"""pyexec.schemas.inlined: the answer schemas with their cross-file refs copied in
judge every answer exactly as the schemas as written do."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from pyexec.schemas import inlined, load_schema, validator

USAGE = {"wall_time_ms": 1.5, "cpu_time_ms": 0.4, "peak_memory_bytes": 13_000_000}
LIMITS = {"timeout_seconds": 10.0, "cpu_seconds": 10, "memory_mb": 256}
SUCCESS = {
    "result": {"hello": "world"},
    "stdout": "",
    "stderr": "",
    "stdout_truncated": False,
    "stderr_truncated": False,
    "usage": USAGE,
    "limits": LIMITS,
}
ERROR = {"error": "The script raised ValueError in main(): no.", "kind": "exception"}
# Values of the wrong type or out of range, tried in every field in turn.
BAD_VALUES: list[Any] = [None, -1, 1.5, "x", True, [], {}, {"extra": 1}, 10**20]


def _variants(body: dict[str, Any]) -> list[dict[str, Any]]:
    """``body``, without each field, with each field set to each bad value, and
    with each nested field of usage and limits set likewise."""
    found = [body]
    for key in body:
        found.append({name: value for name, value in body.items() if name != key})
        for bad in BAD_VALUES:
            found.append({**body, key: bad})
    for nested in ("usage", "limits"):
        for key in body.get(nested, {}):
            for bad in BAD_VALUES:
                changed = copy.deepcopy(body)
                changed[nested][key] = bad
                found.append(changed)
    return [*found, {**body, "unexpected": 1}]


@pytest.mark.parametrize(("name", "body"), [("success", SUCCESS), ("error", ERROR)])
def test_the_inlined_schema_has_no_refs_and_judges_every_variant_alike(
    name: str, body: dict[str, Any]
) -> None:
    as_written = validator(load_schema(name))
    copied_in = validator(inlined(load_schema(name)))
    assert "$ref" not in json.dumps(inlined(load_schema(name)))
    variants = _variants(body) + _variants({**body, **{"usage": USAGE, "limits": LIMITS}})
    verdicts = [(as_written.is_valid(v), copied_in.is_valid(v)) for v in variants]
    assert all(written == copied for written, copied in verdicts)
    assert {written for written, _ in verdicts} == {True, False}  # both kinds were tried


def test_a_ref_with_siblings_is_refused_rather_than_merged() -> None:
    schema = {
        "$id": "https://pyexec.dev/schemas/x.schema.json",
        "properties": {"a": {"$ref": "run.schema.json#/$defs/usage", "description": "d"}},
    }
    with pytest.raises(ValueError, match="only a lone"):
        inlined(schema)
