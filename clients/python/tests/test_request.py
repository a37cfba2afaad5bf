"""The request body: execute()'s parameters are the request schema's fields, what is
left out stays out, None is null, files are encoded, run_code's wrapper. No server."""

from __future__ import annotations

import base64
import importlib.metadata
import inspect
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from live import PROJECT_DIR

import pyexec_client
from pyexec_client import UNSET, AsyncClient, Client, RequestError
from pyexec_client._request import (
    RUN_CODE_SCRIPT,
    SNIPPET_PATH,
    encode_body,
    execute_body,
    run_code_body,
)

REQUEST_SCHEMA = json.loads((PROJECT_DIR / "schemas/request.schema.json").read_text())


def keyword_names(function: Callable[..., Any]) -> set[str]:
    parameters = inspect.signature(function).parameters.values()
    return {p.name for p in parameters if p.name != "self"}


def test_execute_takes_exactly_the_request_schemas_fields() -> None:
    assert keyword_names(Client.execute) == set(REQUEST_SCHEMA["properties"])


def test_the_async_twin_has_the_same_signatures() -> None:
    for name in ("execute", "run_code", "health", "runtime"):
        sync = inspect.signature(getattr(Client, name))
        asynchronous = inspect.signature(getattr(AsyncClient, name))
        assert sync.parameters == asynchronous.parameters, name
    assert inspect.signature(Client.__init__) == inspect.signature(AsyncClient.__init__)


def test_run_code_takes_executes_fields_but_script_input_and_coerce_result() -> None:
    # run_code's main() returns None: there is no result to convert.
    assert keyword_names(Client.run_code) == keyword_names(Client.execute) - {
        "script",
        "input",
        "coerce_result",
    } | {"code"}


def test_fields_left_out_are_not_sent() -> None:
    assert execute_body("def main(): pass") == {"script": "def main(): pass"}


def test_input_none_is_sent_as_null_and_unset_is_not_sent() -> None:
    assert json.loads(encode_body(execute_body("s", input=None))) == {"script": "s", "input": None}
    assert "input" not in execute_body("s", input=UNSET)
    assert execute_body("s", input=[1, {"a": 2}])["input"] == [1, {"a": 2}]
    assert repr(UNSET) == "UNSET"


def test_limits_and_patterns_are_sent_as_given() -> None:
    body = execute_body(
        "s", output_files=("*.csv",), timeout_seconds=2.5, cpu_seconds=3, memory_mb=128
    )
    assert body == {
        "script": "s",
        "output_files": ["*.csv"],
        "timeout_seconds": 2.5,
        "cpu_seconds": 3,
        "memory_mb": 128,
    }


@pytest.mark.parametrize("value", [True, False])
def test_coerce_result_is_sent_when_given_even_false(value: bool) -> None:
    assert json.loads(encode_body(execute_body("s", coerce_result=value))) == {
        "script": "s",
        "coerce_result": value,
    }


def test_coerce_result_none_leaves_the_servers_default() -> None:
    assert "coerce_result" not in execute_body("s", coerce_result=None)


def test_one_pattern_as_a_string_is_refused_rather_than_split_into_characters() -> None:
    with pytest.raises(TypeError, match="list of glob patterns"):
        execute_body("s", output_files="*.csv")


def test_text_files_go_as_text_and_bytes_as_base64() -> None:
    body = execute_body("s", files={"a.txt": "héllo", "b.bin": b"\x00\xff"})
    assert body["files"] == [
        {"path": "a.txt", "content": "héllo"},
        {"path": "b.bin", "content": base64.b64encode(b"\x00\xff").decode(), "encoding": "base64"},
    ]


def test_a_file_that_is_neither_text_nor_bytes_is_refused() -> None:
    with pytest.raises(TypeError, match=r"files\['n'\] is int"):
        execute_body("s", files={"n": 3})  # type: ignore[dict-item]


@pytest.mark.parametrize("value", [math.nan, math.inf, {1, 2}, "\ud800"])
def test_input_json_cannot_hold_is_a_request_error_before_sending(value: object) -> None:
    with pytest.raises(RequestError, match="cannot be sent as JSON") as caught:
        encode_body(execute_body("s", input=value))
    assert caught.value.status is None


def test_run_code_sends_the_code_as_snippet_py_run_as_main() -> None:
    body = run_code_body("print(1)\n", files={"data.txt": "x"}, output_files=["*"])
    assert body["script"] == RUN_CODE_SCRIPT
    assert 'runpy.run_path("snippet.py", run_name="__main__")' in RUN_CODE_SCRIPT
    assert body["files"] == [
        {"path": SNIPPET_PATH, "content": "print(1)\n"},
        {"path": "data.txt", "content": "x"},
    ]
    assert body["output_files"] == ["*"]
    assert "input" not in body
    compile(RUN_CODE_SCRIPT, "script", "exec")


def test_run_code_refuses_a_file_that_would_replace_the_snippet() -> None:
    with pytest.raises(ValueError, match=r"snippet\.py"):
        run_code_body("print(1)", files={SNIPPET_PATH: "other"})


def test_the_version_is_the_installed_distributions() -> None:
    assert pyexec_client.__version__ == importlib.metadata.version("pyexec-client")


@pytest.mark.parametrize(
    "url",
    ["localhost:8080", "ftp://host", "http://", "http://host/?q=1", "http://host/#top"],
)
def test_a_url_that_is_not_a_services_base_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        Client(url)


def test_a_client_shows_neither_its_key_nor_user_info() -> None:
    with Client("https://user:secret@example.com/base/", api_key="k" * 24) as client:
        shown = repr(client)
    assert shown == "Client('https://example.com/base', timeout=90.0)"


def test_a_non_positive_timeout_and_an_empty_key_are_refused() -> None:
    with pytest.raises(ValueError, match="timeout"):
        Client("http://localhost:8080", timeout=0)
    with pytest.raises(ValueError, match="api_key"):
        Client("http://localhost:8080", api_key=" ")
