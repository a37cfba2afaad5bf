"""API keys for real (a server with PYEXEC_API_KEYS), and an ID token from a fake token
provider beside the key, as a Cloud Run service with both IAM and keys receives them.
The server checks the key; Cloud Run, not the server, would check the token."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from live import SCRIPTS_DIR, Server, run_cli, script, serve

from pyexec_client import AuthError, Client, IdToken

KEY = "client-test-key-0123456789"


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[Server]:
    with serve(PYEXEC_API_KEYS=f"{KEY},another-key-0123456789") as running:
        yield running


def test_without_a_key_the_answer_is_an_auth_error(keyed_server: Server) -> None:
    with Client(keyed_server.base) as client, pytest.raises(AuthError) as caught:
        client.execute(script("hello"))
    assert (caught.value.status, caught.value.kind) == (401, "unauthorized")
    assert caught.value.attempts == 1


def test_a_wrong_key_is_an_auth_error_that_does_not_echo_it(keyed_server: Server) -> None:
    wrong = "wrong-key-wrong-key-wrong"
    with Client(keyed_server.base, api_key=wrong) as client, pytest.raises(AuthError) as caught:
        client.execute(script("hello"))
    assert wrong not in str(caught.value)
    assert wrong not in repr(caught.value.body)


def test_the_right_key_runs_the_script_and_health_needs_none(keyed_server: Server) -> None:
    with Client(keyed_server.base, api_key=KEY) as client:
        assert client.execute(script("hello")).result == {"hello": "world"}
    with Client(keyed_server.base) as anonymous:
        assert anonymous.health().status == "ok"


def test_runtime_needs_the_key_too(keyed_server: Server) -> None:
    with Client(keyed_server.base) as anonymous, pytest.raises(AuthError) as caught:
        anonymous.runtime()
    assert (caught.value.status, caught.value.kind) == (401, "unauthorized")
    with Client(keyed_server.base, api_key=KEY) as client:
        assert client.runtime().version_of("numpy") is not None
    refused = run_cli("runtime", "--url", keyed_server.base)
    assert refused.returncode == 3
    accepted = run_cli("runtime", "--url", keyed_server.base, environ={"PYEXEC_API_KEY": KEY})
    assert accepted.returncode == 0, accepted.stderr


def test_a_key_and_an_id_token_together_are_accepted(keyed_server: Server) -> None:
    audiences: list[str] = []

    def fake_google(audience: str) -> IdToken:
        audiences.append(audience)
        return IdToken("fake-id-token", time.time() + 3600)

    with Client(keyed_server.base, api_key=KEY, google_auth=fake_google) as client:
        assert client.execute(script("hello")).result == {"hello": "world"}
        assert client.run_code("print(1)\n").stdout == "1\n"
    # One token for both calls, for the service's scheme://host.
    assert audiences == ["http://127.0.0.1"]


def test_a_token_without_the_key_is_refused_by_the_key_check(keyed_server: Server) -> None:
    def fake_google(audience: str) -> IdToken:
        return IdToken("fake-id-token", time.time() + 3600)

    client = Client(keyed_server.base, google_auth=fake_google)
    with client, pytest.raises(AuthError):
        client.execute(script("hello"))


def test_the_cli_takes_the_key_from_pyexec_api_key(keyed_server: Server) -> None:
    hello = str(SCRIPTS_DIR / "hello.py")
    refused = run_cli("run", hello, "--url", keyed_server.base)
    assert refused.returncode == 3
    assert "unauthorized" in refused.stderr
    accepted = run_cli("run", hello, "--url", keyed_server.base, environ={"PYEXEC_API_KEY": KEY})
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout == 'hello from the jail\n{"hello": "world"}\n'
