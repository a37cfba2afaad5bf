"""pyexec.payload and the request validator's part in it: ``input``, ``files`` and
``output_files`` checked, and made into the meta JSON and data bytes the runner reads
(nothing at all for a bare script)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pyexec.errors import RequestError
from pyexec.files import FileCaps
from pyexec.payload import MAX_INPUT_DEPTH, Payload, output_caps, payload_from_body
from pyexec.schemas import RequestValidator
from pyexec.settings import Settings, load_settings

SETTINGS = load_settings({})
SMALL_INPUT = load_settings({"PYEXEC_MAX_INPUT_BYTES": "1024"})
DEPTH_MESSAGE = '"input" is nested more than 100 levels deep.'


def payload_of(body: dict[str, Any], settings: Settings = SETTINGS) -> Payload:
    return payload_from_body({"script": "def main():\n    pass\n", **body}, settings)


def refusal(body: dict[str, Any], settings: Settings = SETTINGS) -> RequestError:
    """The RequestError payload_from_body raises for ``body``."""
    with pytest.raises(RequestError) as caught:
        payload_of(body, settings)
    return caught.value


def meta_of(body: dict[str, Any], settings: Settings = SETTINGS) -> Any:
    """The meta JSON for ``body``, parsed (as the runner parses it)."""
    meta, _ = payload_of(body, settings).meta_and_data()
    return json.loads(meta)


def lists(levels: int) -> Any:
    """0 inside ``levels`` lists."""
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


def dicts(levels: int) -> Any:
    """0 inside ``levels`` dicts."""
    value: Any = 0
    for _ in range(levels):
        value = {"k": value}
    return value


# --- meta_and_data ---------------------------------------------------------------------------


def test_a_bare_script_has_no_meta_and_no_data() -> None:
    payload = payload_of({})
    assert payload.meta_and_data() == (b"", b"")
    assert payload.input_json is None
    assert payload.files == ()
    assert payload.output_files is None
    assert not payload.wants_files


def test_an_empty_payload_has_no_meta_and_no_data() -> None:
    assert Payload().meta_and_data() == (b"", b"")


def test_empty_files_are_no_files() -> None:
    assert payload_of({"files": []}).meta_and_data() == (b"", b"")


@pytest.mark.parametrize(
    ("value", "meta"),
    [
        pytest.param(None, b'{"input": null}', id="null"),
        pytest.param(0, b'{"input": 0}', id="zero"),
        pytest.param(False, b'{"input": false}', id="false"),
        pytest.param("", b'{"input": ""}', id="empty string"),
        pytest.param([], b'{"input": []}', id="empty list"),
        pytest.param({}, b'{"input": {}}', id="empty object"),
        pytest.param(
            {"a": [1, 2.5, "h\u00e9"]}, b'{"input": {"a":[1,2.5,"h\xc3\xa9"]}}', id="compact UTF-8"
        ),
        pytest.param("\ud800", b'{"input": "\xed\xa0\x80"}', id="a lone surrogate passed"),
    ],
)
def test_input_is_in_the_meta_whenever_present_even_as_null(value: Any, meta: bytes) -> None:
    payload = payload_of({"input": value})
    assert payload.meta_and_data() == (meta, b"")
    assert not payload.wants_files


def test_the_meta_parses_back_to_the_input_as_the_runner_reads_it() -> None:
    value = {"text": "h\u00e9 \u2603 \U0001d11e \ud800", "n": [1, -2, 0.5, None, True]}
    assert meta_of({"input": value}) == {"input": value}


def test_files_and_output_files_go_into_the_meta_and_their_bytes_into_the_data() -> None:
    payload = payload_of(
        {
            "input": 1,
            "files": [
                {"path": "a.txt", "content": "h\u00e9"},
                {"path": "d/b.bin", "content": "AAEC", "encoding": "base64"},
                {"path": "empty", "content": ""},
            ],
            "output_files": ["*.csv", "out/**"],
        }
    )
    meta, data = payload.meta_and_data()
    assert json.loads(meta) == {
        "input": 1,
        "files": [["a.txt", 3], ["d/b.bin", 3], ["empty", 0]],
        "output_files": ["*.csv", "out/**"],
        "caps": [32, 5 * 1024 * 1024, 10 * 1024 * 1024],
    }
    assert data == "h\u00e9".encode() + b"\x00\x01\x02"
    assert payload.wants_files


def test_empty_output_files_still_want_files_and_send_the_caps() -> None:
    payload = payload_of({"output_files": []})
    assert payload.wants_files
    assert json.loads(payload.meta_and_data()[0]) == {
        "output_files": [],
        "caps": [32, 5 * 1024 * 1024, 10 * 1024 * 1024],
    }


def test_files_without_input_have_no_input_in_the_meta() -> None:
    meta = meta_of({"files": [{"path": "x", "content": "1"}]})
    assert meta == {"files": [["x", 1]]}


def test_the_caps_come_from_the_output_file_settings() -> None:
    settings = load_settings(
        {
            "PYEXEC_MAX_OUTPUT_FILES": "3",
            "PYEXEC_MAX_OUTPUT_FILE_BYTES": "100",
            "PYEXEC_MAX_OUTPUT_FILES_BYTES": "250",
        }
    )
    assert output_caps(settings) == FileCaps(3, 100, 250)
    assert meta_of({"output_files": ["*"]}, settings)["caps"] == [3, 100, 250]


# --- input: size and depth -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("x" * 1022, id="ASCII"),
        pytest.param("\u00e9" * 511, id="2-byte characters"),
        pytest.param([1] * 510 + [10], id="a list, measured without spaces"),
        pytest.param({"k": "x" * 1016}, id="an object, measured without spaces"),
    ],
)
def test_input_of_exactly_the_limit_as_compact_utf8_json_passes(value: Any) -> None:
    payload = payload_of({"input": value}, SMALL_INPUT)
    assert payload.input_json is not None
    assert len(payload.input_json) == 1024


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("x" * 1023, id="ASCII"),
        pytest.param("\u00e9" * 511 + "x", id="2-byte characters"),
        pytest.param([1] * 511 + [2], id="a list"),
        pytest.param({"k": "x" * 1017}, id="an object"),
        pytest.param("\ud800" * 341, id="lone surrogates, 3 bytes each"),
    ],
)
def test_input_one_byte_over_the_limit_is_refused(value: Any) -> None:
    error = refusal({"input": value}, SMALL_INPUT)
    assert error.message == (
        '"input" is 1025 bytes as compact JSON; the limit is 1024 '
        "(PYEXEC_MAX_INPUT_BYTES). Send big data as a file instead."
    )
    assert error.details == {"field": "input"}


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(lists(MAX_INPUT_DEPTH), id="lists"),
        pytest.param(dicts(MAX_INPUT_DEPTH), id="objects"),
        pytest.param([dicts(MAX_INPUT_DEPTH - 1), 1, lists(50)], id="mixed, deepest first"),
        pytest.param([lists(3), dicts(MAX_INPUT_DEPTH - 1)], id="mixed, deepest last"),
        pytest.param("x", id="a scalar"),
    ],
)
def test_input_100_levels_deep_passes(value: Any) -> None:
    assert meta_of({"input": value}) == {"input": value}


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(lists(MAX_INPUT_DEPTH + 1), id="lists"),
        pytest.param(dicts(MAX_INPUT_DEPTH + 1), id="objects"),
        pytest.param([1, {"a": lists(MAX_INPUT_DEPTH - 1)}], id="mixed"),
        pytest.param([lists(2), 1, lists(MAX_INPUT_DEPTH)], id="the last branch deep"),
        pytest.param(lists(5000), id="5000 levels"),
    ],
)
def test_input_101_levels_deep_is_refused(value: Any) -> None:
    error = refusal({"input": value})
    assert (error.message, error.details) == (DEPTH_MESSAGE, {"field": "input"})


def test_depth_is_checked_before_size() -> None:
    error = refusal({"input": [lists(MAX_INPUT_DEPTH), "x" * 2000]}, SMALL_INPUT)
    assert error.message == DEPTH_MESSAGE


# --- files and output_files through payload_from_body -----------------------------------------


def test_a_bad_file_is_refused_with_its_field_index_and_path() -> None:
    error = refusal({"files": [{"path": "ok", "content": ""}, {"path": "../x", "content": ""}]})
    assert error.details == {"field": "files", "index": 1, "path": "../x"}


def test_each_file_is_capped_by_the_smaller_of_file_size_mb_and_the_total() -> None:
    settings = load_settings({"PYEXEC_FILE_SIZE_MB": "1", "PYEXEC_MAX_FILES_BYTES": "3000000"})
    megabyte = 1024 * 1024
    payload_of({"files": [{"path": "a", "content": "x" * megabyte}]}, settings)
    error = refusal({"files": [{"path": "a", "content": "x" * (megabyte + 1)}]}, settings)
    assert "the limit per file is 1048576 bytes" in error.message
    tight = load_settings({"PYEXEC_FILE_SIZE_MB": "10", "PYEXEC_MAX_FILES_BYTES": "1000"})
    error = refusal({"files": [{"path": "a", "content": "x" * 1001}]}, tight)
    assert "the limit per file is 1000 bytes" in error.message


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("/etc/passwd", "must be relative to the working directory"),
        ("../x", "must not have an empty, '.' or '..' component"),
        ("a\\b", "must not contain a NUL byte or a backslash"),
    ],
    ids=["absolute", "dot-dot", "backslash"],
)
def test_a_bad_output_pattern_is_refused_with_its_index(pattern: str, problem: str) -> None:
    error = refusal({"output_files": ["*.csv", pattern]})
    assert error.message == f'output_files[1] "{pattern}" {problem}.'
    assert error.details == {"field": "output_files", "index": 1}


# --- RequestValidator: shapes of files and output_files ---------------------------------------

VALIDATOR = RequestValidator(SETTINGS)
SCRIPT = "def main(x):\n    return x\n"


def shape_refusal(**fields: Any) -> tuple[str, dict[str, Any]]:
    """The message and details of the RequestError for a body with ``fields``."""
    with pytest.raises(RequestError) as caught:
        VALIDATOR.validate({"script": SCRIPT, **fields})
    return caught.value.message, caught.value.details


FILE = {"path": "a.txt", "content": "x"}


@pytest.mark.parametrize(
    ("fields", "message", "details"),
    [
        pytest.param(
            {"files": {"path": "a"}},
            '"files" must be an array of {"path", "content", "encoding"} objects, not an object.',
            {"field": "files"},
            id="files an object",
        ),
        pytest.param(
            {"files": "a.txt"},
            '"files" must be an array of {"path", "content", "encoding"} objects, not a string.',
            {"field": "files"},
            id="files a string",
        ),
        pytest.param(
            {"files": [FILE] * 33},
            '"files" has 33 items; this server allows at most 32 (PYEXEC_MAX_FILES).',
            {"field": "files", "maximum": 32},
            id="too many files",
        ),
        pytest.param(
            {"files": [FILE, {"path": 5, "content": "x"}]},
            "files[1].path must be a string, not a number.",
            {"field": "files", "index": 1},
            id="a path not a string",
        ),
        pytest.param(
            {"files": [{"path": "b", "content": None}]},
            "files[0].content must be a string, not null.",
            {"field": "files", "index": 0, "path": "b"},
            id="content not a string",
        ),
        pytest.param(
            {"files": [{"path": "b"}]},
            'files[0] must have "path" and "content".',
            {"field": "files", "index": 0, "path": "b"},
            id="no content",
        ),
        pytest.param(
            {"files": [{"content": "x"}]},
            'files[0] must have "path" and "content".',
            {"field": "files", "index": 0},
            id="no path",
        ),
        pytest.param(
            {"files": [{"path": "b", "content": "x", "mode": 0o755}]},
            'files[0] may only have "path", "content" and "encoding".',
            {"field": "files", "index": 0, "path": "b"},
            id="an extra key",
        ),
        pytest.param(
            {"files": [{"path": "b", "content": "x", "encoding": "hex"}]},
            'files[0].encoding must be "utf-8" or "base64".',
            {"field": "files", "index": 0, "path": "b"},
            id="an unknown encoding",
        ),
        pytest.param(
            {"files": [{"path": "", "content": "x"}]},
            "files[0].path must be 1 to 1024 characters.",
            {"field": "files", "index": 0, "path": ""},
            id="an empty path",
        ),
        pytest.param(
            {"files": [FILE, FILE, {"path": "p" * 1025, "content": "x"}]},
            "files[2].path must be 1 to 1024 characters.",
            {"field": "files", "index": 2, "path": "p" * 1025},
            id="a path of 1025 characters",
        ),
        pytest.param(
            {"output_files": "*.csv"},
            '"output_files" must be an array of glob patterns (strings), not a string.',
            {"field": "output_files"},
            id="output_files a string",
        ),
        pytest.param(
            {"output_files": None},
            '"output_files" must be an array of glob patterns (strings), not null.',
            {"field": "output_files"},
            id="output_files null",
        ),
        pytest.param(
            {"output_files": ["*"] * 17},
            '"output_files" has 17 items; this server allows at most 16.',
            {"field": "output_files", "maximum": 16},
            id="too many patterns",
        ),
        pytest.param(
            {"output_files": ["*", 3]},
            "output_files[1] must be a string, not a number.",
            {"field": "output_files", "index": 1},
            id="a pattern not a string",
        ),
        pytest.param(
            {"output_files": [""]},
            "output_files[0] must be 1 to 256 characters.",
            {"field": "output_files", "index": 0},
            id="an empty pattern",
        ),
        pytest.param(
            {"output_files": ["*" * 257]},
            "output_files[0] must be 1 to 256 characters.",
            {"field": "output_files", "index": 0},
            id="a pattern of 257 characters",
        ),
    ],
)
def test_a_files_shape_error_names_the_field_index_and_path(
    fields: dict[str, Any], message: str, details: dict[str, Any]
) -> None:
    assert shape_refusal(**fields) == (message, details)


@pytest.mark.parametrize(
    "item", [5, "a.txt", None, ["a", "x"]], ids=["number", "string", "null", "list"]
)
def test_a_files_item_that_is_not_an_object_is_told_to_be_an_object(item: Any) -> None:
    message, details = shape_refusal(files=[item])
    assert details == {"field": "files", "index": 0}
    assert "must be an object" in message
    assert "must be a string" not in message


def test_the_file_count_maximum_follows_the_setting() -> None:
    validator = RequestValidator(load_settings({"PYEXEC_MAX_FILES": "2"}))
    with pytest.raises(RequestError) as caught:
        validator.validate({"script": SCRIPT, "files": [FILE] * 3})
    assert caught.value.message == (
        '"files" has 3 items; this server allows at most 2 (PYEXEC_MAX_FILES).'
    )
    assert caught.value.details == {"field": "files", "maximum": 2}


def test_a_rule_broken_after_the_schema_is_a_request_error_from_validate() -> None:
    with pytest.raises(RequestError) as caught:
        VALIDATOR.validate({"script": SCRIPT, "files": [FILE, FILE]})
    assert caught.value.message == 'files[1].path "a.txt" is also files[0].path.'
    assert caught.value.details == {"field": "files", "index": 1, "path": "a.txt"}


def test_validate_returns_the_script_limits_and_payload() -> None:
    script, limits, payload = VALIDATOR.validate(
        {
            "script": SCRIPT,
            "input": {"n": 1},
            "files": [{"path": "d/x.bin", "content": "/w==", "encoding": "base64"}],
            "output_files": ["**"],
            "cpu_seconds": 3,
        }
    )
    assert script == SCRIPT
    assert limits.cpu_seconds == 3
    assert payload == Payload(
        input_json=b'{"n":1}',
        files=(("d/x.bin", b"\xff"),),
        output_files=("**",),
        caps=output_caps(SETTINGS),
    )


def test_validate_of_a_bare_script_gives_an_empty_payload_that_sends_nothing() -> None:
    _, _, payload = VALIDATOR.validate({"script": SCRIPT})
    assert payload.meta_and_data() == (b"", b"")
    assert not payload.wants_files


def test_validate_accepts_input_null_as_input() -> None:
    _, _, payload = VALIDATOR.validate({"script": SCRIPT, "input": None})
    assert payload.input_json == b"null"
