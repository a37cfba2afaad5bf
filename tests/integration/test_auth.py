"""API keys (PYEXEC_API_KEYS): a request without a valid key is 401; keys never leak."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from pyexec.api import Service
from pyexec.settings import load_settings
from tests.support import check_schema, script

KEY = "k" * 24


@pytest.fixture
def with_api_keys(service: Service) -> Iterator[None]:
    """The app's service with PYEXEC_API_KEYS set, for the duration of a test."""
    original = service.settings
    service.settings = dataclasses.replace(original, api_keys=(KEY, "x" * 20))
    yield
    service.settings = original


@pytest.mark.usefixtures("with_api_keys")
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-key-wrong-key"}, 401),
        ({"Authorization": f"Bearer {KEY}x"}, 401),
        ({"X-API-Key": KEY[:-1]}, 401),
        ({"Authorization": f"Bearer {KEY}"}, 200),
        ({"Authorization": f"bearer {KEY}"}, 200),
        ({"X-API-Key": KEY}, 200),
    ],
)
def test_api_keys_when_configured(
    app_client: FlaskClient, headers: dict[str, str], status: int
) -> None:
    response = app_client.post("/execute", json={"script": script("hello")}, headers=headers)
    assert response.status_code == status
    body = response.get_json()
    check_schema(status, body)
    if status == 401:
        assert body["kind"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="pyexec"'
        assert KEY not in json.dumps(body)
    # /healthz stays open for probes.
    assert app_client.get("/healthz").status_code == 200


@pytest.mark.usefixtures("with_api_keys")
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        # What the Python client sends to a Cloud Run service with both IAM and keys:
        # the ID token where Cloud Run looks for it besides Authorization, the key
        # where the service looks for it.
        ({"X-Serverless-Authorization": "Bearer id-token", "X-API-Key": KEY}, 200),
        ({"X-Serverless-Authorization": "Bearer id-token", "Authorization": f"Bearer {KEY}"}, 200),
        # The token in Authorization shadows X-API-Key: why the client never sends that.
        ({"Authorization": "Bearer id-token", "X-API-Key": KEY}, 401),
    ],
)
def test_an_api_key_beside_a_cloud_run_id_token(
    app_client: FlaskClient, headers: dict[str, str], status: int
) -> None:
    response = app_client.post("/execute", json={"script": script("hello")}, headers=headers)
    assert response.status_code == status
    check_schema(status, response.get_json())


def test_no_api_keys_means_no_check(app_client: FlaskClient) -> None:
    response = app_client.post("/execute", json={"script": script("hello")})
    assert response.status_code == 200


def test_keys_never_appear_in_settings_output() -> None:
    settings = load_settings({"PYEXEC_API_KEYS": f"{KEY}, {'y' * 16}"})
    assert settings.api_keys == (KEY, "y" * 16)
    assert KEY not in repr(settings)
    assert KEY not in json.dumps(settings.public(), default=str)
    assert settings.public()["api_keys"] == 2
    with pytest.raises(ValueError, match="at least 16 characters"):
        load_settings({"PYEXEC_API_KEYS": "short"})
