"""pyexec.api: the request body's JSON, parsed strictly, and refused unparsed when its
structure alone would cost far more than any valid request's.

Python's JSON parser accepts NaN, Infinity and -Infinity, and reads numbers too large
for a float (1e999) as infinity; none of them is JSON, and every schema comparison with
NaN is false, so each is refused at the parse with a sentence naming it.
"""

from __future__ import annotations

from typing import Any

import pytest

from pyexec.api import _parse_json, _refuse_bulky_structure
from pyexec.errors import InvalidJson, RequestError


def refusal(raw: bytes) -> str:
    """The InvalidJson message _parse_json raises for ``raw``."""
    with pytest.raises(InvalidJson) as caught:
        _parse_json(raw)
    return caught.value.message


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        (b'{"script": "x", "timeout_seconds": NaN}', "NaN"),
        (b'{"script": Infinity}', "Infinity"),
        (b'{"script": "x", "extra": {"a": [1, -Infinity]}}', "-Infinity"),
        (b"NaN", "NaN"),
    ],
    ids=["NaN as a limit", "Infinity as the script", "-Infinity nested", "NaN alone"],
)
def test_nan_and_infinity_anywhere_are_invalid_json_naming_the_constant(
    raw: bytes, named: str
) -> None:
    assert refusal(raw) == f"The request body contains {named}, which is not JSON."


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        (b'{"script": "x", "timeout_seconds": 1e999}', "1e999"),
        (b'{"script": "x", "timeout_seconds": -1E+400}', "-1E+400"),
        (b'{"script": "x", "n": [' + b"9" * 400 + b".5]}", "9" * 40 + "..."),
    ],
    ids=["1e999", "-1E+400", "400 digits, cut in the message"],
)
def test_a_number_too_large_for_a_float_is_invalid_json_naming_it(raw: bytes, named: str) -> None:
    assert refusal(raw) == (
        f"The request body contains the number {named}, which is too large "
        "(it would be Infinity, which is not JSON)."
    )


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b'{"timeout_seconds": 2.5}', {"timeout_seconds": 2.5}),
        (b"[1e308, -1.7976931348623157e308, 1e-999, 0.0]", [1e308, -1.7976931348623157e308, 0, 0]),
        (
            b'{"script": "NaN, Infinity and 1e999 in a string"}',
            {"script": "NaN, Infinity and 1e999 in a string"},
        ),
    ],
    ids=["a plain float", "the largest floats and an underflow to 0", "the words in a string"],
)
def test_finite_numbers_and_the_words_inside_strings_still_parse(raw: bytes, value: Any) -> None:
    assert _parse_json(raw) == value


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"script": }', "The request body is not valid JSON (line 1, column 12)."),
        (b'{"script": "\xc3("}', "The request body is not valid JSON."),
        (b"[" * 100_000 + b"]" * 100_000, "The request body is nested too deeply."),
    ],
    ids=["a syntax error", "not UTF-8", "nested too deeply"],
)
def test_other_bodies_that_are_not_json_keep_their_sentences(raw: bytes, message: str) -> None:
    assert refusal(raw) == message


def _body_with_input(items: bytes) -> bytes:
    return b'{"script": "def main(input):\\n    return 1\\n", "input": [' + items + b"0]}"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"script": "def main():\\n    return 1\\n"}',
        _body_with_input(b"[]," * 500),  # as many as an input of 1,000 bytes can hold
        # A JSON file sent as text: its brackets are in a string, so they cost nothing.
        b'{"script": "x", "files": [{"path": "a.json", "content": "' + b"[{}]," * 50_000 + b'"}]}',
        # Escaped quotes inside the string do not end it.
        b'{"script": "x", "files": [{"path": "a", "content": "\\"' + b"[]" * 5_000 + b'\\""}]}',
    ],
    ids=["hello", "input at its limit", "a JSON file as text", "escaped quotes"],
)
def test_a_body_whose_structure_a_valid_request_can_have_passes(raw: bytes) -> None:
    _refuse_bulky_structure(raw, max_input_bytes=1000)


@pytest.mark.parametrize(
    "items",
    [b"[]," * 1_600, b"{}," * 1_600, b"[" * 1_600 + b"]" * 1_600 + b","],
    ids=["arrays", "objects", "nested"],
)
def test_a_body_with_more_arrays_and_objects_than_a_request_holds_is_refused_unparsed(
    items: bytes,
) -> None:
    with pytest.raises(RequestError) as caught:
        _refuse_bulky_structure(_body_with_input(items), max_input_bytes=1000)
    assert caught.value.kind == "bad_request"
    assert "a request holds at most 1500" in caught.value.message
    assert "PYEXEC_MAX_INPUT_BYTES" in caught.value.message
