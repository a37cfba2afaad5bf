"""``GET /runtime``'s answer as a typed Runtime: its fields are the runtime schema's,
numbers stay as they came, and an answer that is not pyexec's is a ServerError. No
server (test_live_client.py asks a real one)."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import httpx
import pytest
from live import PROJECT_DIR

from pyexec_client import LimitRange, Package, Runtime, RuntimeLimits, ServerError
from pyexec_client._results import parse_runtime
from pyexec_client._session import Session

RUNTIME_SCHEMA = json.loads((PROJECT_DIR / "schemas/runtime.schema.json").read_text())

# The example of docs/api.md#get-runtime, packages cut short.
ANSWER: dict[str, Any] = {
    "python": "3.12.8",
    "packages": [
        {"name": "numpy", "version": "2.3.5"},
        {"name": "pandas", "version": "2.3.3"},
        {"name": "python-dateutil", "version": "2.9.0.post0"},
    ],
    "preimported": ["numpy", "pandas"],
    "limits": {
        "timeout_seconds": {"default": 10, "maximum": 60.5},
        "cpu_seconds": {"default": 10, "maximum": 60},
        "memory_mb": {"default": 256, "maximum": 1024},
    },
}


def field_names(cls: type[Any]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.name != "raw"}


def test_the_records_have_the_runtime_schemas_fields() -> None:
    assert field_names(Runtime) == set(RUNTIME_SCHEMA["properties"])
    assert field_names(Package) == set(
        RUNTIME_SCHEMA["properties"]["packages"]["items"]["required"]
    )
    limits = RUNTIME_SCHEMA["properties"]["limits"]
    assert field_names(RuntimeLimits) == set(limits["properties"])
    for entry in limits["properties"].values():
        assert field_names(LimitRange) == set(entry["properties"])


def test_an_answer_is_parsed_into_typed_records() -> None:
    runtime = parse_runtime(ANSWER)
    assert runtime.python == "3.12.8"
    assert runtime.packages[0] == Package("numpy", "2.3.5")
    assert len(runtime.packages) == 3
    assert runtime.preimported == ("numpy", "pandas")
    assert runtime.limits.timeout_seconds == LimitRange(10, 60.5)
    assert runtime.limits.memory_mb == LimitRange(256, 1024)
    assert type(runtime.limits.memory_mb.maximum) is int  # a JSON integer stays one
    assert runtime.raw == ANSWER
    assert "raw" not in repr(runtime)


def test_a_packages_version_is_found_by_its_name_as_pip_compares_names() -> None:
    runtime = parse_runtime(ANSWER)
    assert runtime.version_of("pandas") == "2.3.3"
    assert runtime.version_of("Python_Dateutil") == "2.9.0.post0"
    assert runtime.version_of("polars") is None


def broken(path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    """ANSWER with the value at ``path`` replaced (or removed when ``value`` is ...)."""
    answer = copy.deepcopy(ANSWER)
    target: Any = answer
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return answer


@pytest.mark.parametrize(
    "answer",
    [
        broken(("python",), ...),
        broken(("python",), 3.12),
        broken(("packages",), "numpy"),
        broken(("packages", 0), "numpy"),
        broken(("packages", 0, "version"), ...),
        broken(("preimported",), {"numpy": True}),
        broken(("preimported", 0), None),
        broken(("limits", "memory_mb"), ...),
        broken(("limits", "cpu_seconds", "maximum"), "60"),
        broken(("limits", "cpu_seconds", "default"), True),
    ],
)
def test_an_answer_that_is_not_a_runtime_is_refused(answer: dict[str, Any]) -> None:
    with pytest.raises((KeyError, TypeError)):
        parse_runtime(answer)


def test_the_client_reports_such_an_answer_as_a_server_error() -> None:
    session = Session("http://127.0.0.1:8080", api_key=None, google_auth=False, timeout=5)
    response = httpx.Response(200, json={"status": "ok"})
    with pytest.raises(ServerError, match="not pyexec's answer") as caught:
        session.parse_success(response, parse_runtime)
    assert caught.value.status == 200
