"""Shared fixtures: the real app (functions-framework over main.py) and script helpers.

Tests talk to the service only through HTTP via functions-framework's Flask app,
and every script runs in a real nsjail jail. Each response is validated against
its JSON Schema in schemas/ before a test sees it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

from pyexec.schemas import load_schema

PROJECT_DIR = Path(__file__).resolve().parent.parent
SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"
CANARY = "pyexec-canary-5f3a9c"

# Short limits keep the limit tests quick; set before main.py reads them.
os.environ.setdefault("PYEXEC_TIMEOUT", "4")
os.environ.setdefault("PYEXEC_CPU_SECONDS", "2")
os.environ["PYEXEC_TEST_CANARY"] = CANARY


def script(name: str, **tokens: str) -> str:
    """The source of tests/scripts/<name>.py with ``__TOKEN__`` placeholders filled."""
    source = (SCRIPTS_DIR / f"{name}.py").read_text(encoding="utf-8")
    for key, value in tokens.items():
        source = source.replace(f"__{key}__", value)
    return source


def check_schema(status: int, body: Any) -> None:
    """Fail unless ``body`` matches the schema for its status."""
    name = "success" if status == 200 else "error"
    Draft202012Validator(load_schema(name)).validate(body)


class Api:
    """A thin HTTP client over the app that validates every JSON answer."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def post(self, body: Any = None, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        if body is not None:
            kwargs["json"] = body
        response = self.client.post("/execute", **kwargs)
        assert response.mimetype == "application/json"
        data = response.get_json()
        if response.status_code != 200 or "result" in data:
            check_schema(response.status_code, data)
        return response.status_code, data

    def run(self, source: str) -> tuple[int, dict[str, Any]]:
        """POST a script and return (status, validated body)."""
        return self.post({"script": source})

    def run_file(self, name: str, **tokens: str) -> tuple[int, dict[str, Any]]:
        """POST tests/scripts/<name>.py."""
        return self.run(script(name, **tokens))


@pytest.fixture(scope="session")
def app_client() -> FlaskClient:
    """The real service app, created once, as functions-framework creates it."""
    app = functions_framework.create_app("handle", str(PROJECT_DIR / "main.py"))
    return app.test_client()


@pytest.fixture
def api(app_client: FlaskClient) -> Api:
    """A validating client for the service."""
    return Api(app_client)


def jailed_processes() -> list[str]:
    """Processes of the jail uid (65534) or nsjail still alive on this machine."""
    listing = subprocess.run(
        ["ps", "-eo", "pid=,uid=,comm="], capture_output=True, text=True, check=True
    ).stdout
    return [
        line.strip()
        for line in listing.splitlines()
        if line.split()[1] == "65534" or line.split()[2] == "nsjail"
    ]


@pytest.fixture
def leaves_nothing_behind(api: Api) -> Iterator[None]:
    """After the test: no jail process survives and the service still answers."""
    yield
    assert jailed_processes() == []
    status, body = api.run_file("hello")
    assert (status, body) == (200, {"result": {"hello": "world"}, "stdout": ""})
