"""Credentials: which headers go out, when a Google ID token is fetched and from where,
its cache, and that nothing probes the network off Google Cloud.

google-auth runs for real against a fake metadata server and a fake token endpoint on
loopback; gcloud is a fake executable. Nothing leaves the machine.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import google.auth.compute_engine._metadata as metadata
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pyexec_client import AuthError, IdToken
from pyexec_client import _auth as auth
from pyexec_client._auth import (
    EXPIRY_MARGIN_SECONDS,
    IdTokens,
    audience_for,
    auth_headers,
    id_tokens_for,
    is_cloud_run,
)
from pyexec_client._gcloud import GcloudSource
from pyexec_client._google import GoogleAuthSource, Sources, find_sources, on_google_cloud
from pyexec_client._tokens import TokenUnavailableError, jwt_expiry

RUN_APP = "https://pyexec-abc123-uc.a.run.app"


def make_jwt(expires_at: float, audience: str = RUN_APP) -> str:
    """An unsigned JWT with ``exp`` (the client reads it; only a server verifies)."""

    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    signature = base64.urlsafe_b64encode(b"not-a-signature").rstrip(b"=").decode()
    header = part({"alg": "RS256", "typ": "JWT"})
    payload = part({"exp": int(expires_at), "aud": audience, "iat": int(expires_at) - 3600})
    return f"{header}.{payload}.{signature}"


@dataclass
class Counter:
    """A fake token provider that counts its calls."""

    lifetime: float = 3600.0
    audiences: list[str] = field(default_factory=list)

    def __call__(self, audience: str) -> IdToken:
        """A new token for ``audience``, numbered by the calls so far."""
        self.audiences.append(audience)
        return IdToken(f"token-{len(self.audiences)}", time.time() + self.lifetime)


def no_sources(environ: Mapping[str, str]) -> Sources:
    return find_sources(environ, which=lambda _: None, dmi_product_name=Path("/nonexistent"))


# ---- headers, audience --------------------------------------------------------------


def test_a_key_alone_goes_as_x_api_key() -> None:
    assert auth_headers("k" * 24, None) == {"X-API-Key": "k" * 24}


def test_a_token_alone_goes_in_authorization() -> None:
    assert auth_headers(None, "tok") == {"Authorization": "Bearer tok"}


def test_with_a_key_the_token_goes_in_x_serverless_authorization() -> None:
    assert auth_headers("k" * 24, "tok") == {
        "X-API-Key": "k" * 24,
        "X-Serverless-Authorization": "Bearer tok",
    }


def test_nothing_goes_without_credentials() -> None:
    assert auth_headers(None, None) == {}


def test_the_audience_is_scheme_and_host() -> None:
    assert audience_for(f"{RUN_APP}/") == RUN_APP
    assert audience_for("http://user:pw@127.0.0.1:8080/prefix") == "http://127.0.0.1"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (RUN_APP, True),
        ("https://PYEXEC-x.A.RUN.APP.", True),
        ("https://run.app.example.com", False),
        ("https://evilrun.app", False),
        ("http://127.0.0.1:8080", False),
    ],
)
def test_cloud_run_hosts_are_recognised_by_their_domain(url: str, expected: bool) -> None:
    assert is_cloud_run(url) is expected


# ---- which mode, which sources ------------------------------------------------------


def test_automatic_mode_does_nothing_for_a_host_that_is_not_cloud_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def forbidden(environ: Mapping[str, str]) -> Sources:
        raise AssertionError("looked for credentials")

    monkeypatch.setattr(auth, "find_sources", forbidden)
    assert id_tokens_for(None, "http://127.0.0.1:8080").get() is None


def test_google_auth_false_never_sends_a_token_even_to_cloud_run() -> None:
    assert id_tokens_for(False, RUN_APP).get() is None


def test_automatic_mode_without_sources_sends_none_and_remembers_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth, "find_sources", no_sources)
    tokens = id_tokens_for(None, RUN_APP, environ={})
    assert tokens.get() is None
    assert tokens.why_none is not None
    assert "gcloud is not on PATH" in tokens.why_none
    assert "not probed" in tokens.why_none


def test_required_mode_without_sources_is_an_auth_error_naming_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth, "find_sources", no_sources)
    tokens = id_tokens_for(True, "http://127.0.0.1:8080", environ={})
    with pytest.raises(AuthError, match=r"google_auth=True.*gcloud is not on PATH"):
        tokens.get()


def test_a_provider_given_as_google_auth_is_used_for_any_host() -> None:
    provider = Counter()
    tokens = id_tokens_for(provider, "http://127.0.0.1:8080")
    assert tokens.get() == "token-1"
    assert provider.audiences == ["http://127.0.0.1"]


def test_off_google_cloud_only_gcloud_is_a_source(tmp_path: Path) -> None:
    dmi = tmp_path / "product_name"
    dmi.write_text("Standard PC (Q35 + ICH9, 2009)\n")
    sources = find_sources({}, which=lambda _: "/usr/bin/gcloud", dmi_product_name=dmi)
    assert [type(source) for source in sources.usable] == [GcloudSource]


@pytest.mark.parametrize(
    "environ",
    [{"K_SERVICE": "svc"}, {"CLOUD_RUN_JOB": "job"}, {"GCE_METADATA_HOST": "127.0.0.1:1"}],
)
def test_on_google_cloud_google_auth_comes_first(environ: dict[str, str]) -> None:
    sources = find_sources(environ, which=lambda _: "/usr/bin/gcloud")
    assert [type(source) for source in sources.usable] == [GoogleAuthSource, GcloudSource]


def test_a_google_machine_is_recognised_by_its_dmi_product_name(tmp_path: Path) -> None:
    dmi = tmp_path / "product_name"
    dmi.write_text("Google Compute Engine\n")
    assert on_google_cloud({}, dmi)
    assert not on_google_cloud({}, tmp_path / "missing")


@pytest.mark.parametrize(
    ("key_type", "usable"),
    [
        ("service_account", True),
        ("impersonated_service_account", True),
        ("authorized_user", False),
    ],
)
def test_a_key_file_counts_only_if_google_auth_makes_id_tokens_from_it(
    tmp_path: Path, key_type: str, usable: bool
) -> None:
    key = tmp_path / "key.json"
    key.write_text(json.dumps({"type": key_type}))
    sources = no_sources({"GOOGLE_APPLICATION_CREDENTIALS": str(key)})
    assert (len(sources.usable) == 1) is usable


def test_without_google_auth_installed_the_reason_says_how_to_install_it() -> None:
    sources = find_sources({"K_SERVICE": "svc"}, which=lambda _: None, google_auth_installed=False)
    assert sources.usable == ()
    assert any("pyexec-client[google]" in reason for reason in sources.unusable)


# ---- the cache ----------------------------------------------------------------------


def test_a_token_is_fetched_once_and_kept_until_near_its_expiry() -> None:
    provider = Counter()
    tokens = IdTokens(provider, RUN_APP, required=True)
    assert [tokens.get(), tokens.get(), tokens.get()] == ["token-1"] * 3
    assert provider.audiences == [RUN_APP]


def test_a_token_near_its_expiry_is_fetched_again() -> None:
    provider = Counter(lifetime=EXPIRY_MARGIN_SECONDS - 1)
    tokens = IdTokens(provider, RUN_APP, required=True)
    assert [tokens.get(), tokens.get()] == ["token-1", "token-2"]
    assert tokens.needs_fetch()


def test_only_a_missing_or_expiring_token_needs_a_fetch() -> None:
    tokens = IdTokens(Counter(), RUN_APP, required=True)
    assert tokens.needs_fetch()
    tokens.get()
    assert not tokens.needs_fetch()
    assert not IdTokens(None, RUN_APP, required=False).needs_fetch()


def test_threads_sharing_a_client_fetch_one_token() -> None:
    calls: list[str] = []

    def slow(audience: str) -> IdToken:
        calls.append(audience)
        time.sleep(0.2)
        return IdToken("shared", time.time() + 3600)

    tokens = IdTokens(slow, RUN_APP, required=True)
    seen: list[str | None] = []
    threads = [threading.Thread(target=lambda: seen.append(tokens.get())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == ["shared"] * 8
    assert len(calls) == 1


def test_a_failed_fetch_is_an_error_when_required_and_no_token_when_automatic() -> None:
    calls: list[str] = []

    def failing(audience: str) -> IdToken:
        calls.append(audience)
        raise TokenUnavailableError("gcloud auth print-identity-token failed: not logged in")

    with pytest.raises(AuthError, match="not logged in"):
        IdTokens(failing, RUN_APP, required=True).get()
    automatic = IdTokens(failing, RUN_APP, required=False)
    assert [automatic.get(), automatic.get()] == [None, None]
    assert automatic.why_none is not None
    assert "not logged in" in automatic.why_none
    # Required: tried once; automatic: tried once, then given up for this client.
    assert len(calls) == 2
    assert not automatic.needs_fetch()


def test_neither_a_token_nor_its_holder_shows_its_value() -> None:
    token = IdToken("secret-token-value", 1.0)
    tokens = IdTokens(lambda _: token, RUN_APP, required=True)
    tokens.get()
    assert "secret-token-value" not in repr(token)
    assert "secret-token-value" not in repr(tokens)


def test_the_expiry_of_a_jwt_is_read_and_anything_else_has_none() -> None:
    assert jwt_expiry(make_jwt(1_800_000_000)) == 1_800_000_000
    assert jwt_expiry("opaque-token") is None
    assert jwt_expiry("a.!!!.c") is None
    assert jwt_expiry("a.e30.c") is None  # {} has no exp


# ---- gcloud -------------------------------------------------------------------------


def fake_gcloud(tmp_path: Path, body: str) -> str:
    executable = tmp_path / "gcloud"
    executable.write_text(f"#!/bin/sh\n{body}\n")
    executable.chmod(0o755)
    return str(executable)


def test_gcloud_gives_the_developers_token_with_its_expiry(tmp_path: Path) -> None:
    jwt = make_jwt(1_900_000_000)
    gcloud = fake_gcloud(
        tmp_path, f'[ "$1 $2" = "auth print-identity-token" ] || exit 9\necho {jwt}'
    )
    token = GcloudSource(gcloud)(RUN_APP)
    assert (token.value, token.expires_at) == (jwt, 1_900_000_000)


def test_a_failing_gcloud_says_why_in_its_last_line(tmp_path: Path) -> None:
    gcloud = fake_gcloud(
        tmp_path, 'echo "ERROR: (gcloud.auth) You do not have an active account." >&2\nexit 1'
    )
    with pytest.raises(TokenUnavailableError, match="do not have an active account"):
        GcloudSource(gcloud)(RUN_APP)


def test_a_missing_gcloud_is_a_token_unavailable(tmp_path: Path) -> None:
    with pytest.raises(TokenUnavailableError, match="could not run"):
        GcloudSource(str(tmp_path / "no-gcloud"))(RUN_APP)


# ---- google-auth, for real, against fake Google endpoints on loopback --------------


@dataclass
class FakeGoogle:
    """A metadata server and an OAuth token endpoint on one loopback port."""

    host: str
    token: str
    requests: list[tuple[str, str, Mapping[str, str], bytes]]


def _handler(fake: Callable[[], FakeGoogle]) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(200)
            self.send_header("Metadata-Flavor", "Google")
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _headers(self) -> dict[str, str]:
            return {name.lower(): value for name, value in self.headers.items()}

        def do_GET(self) -> None:
            fake().requests.append(("GET", self.path, self._headers(), b""))
            if "/service-accounts/default/identity?" in self.path:
                self._answer(fake().token.encode())
            elif "/service-accounts/default/" in self.path:
                info = {"email": "runner@test.iam.gserviceaccount.com", "aliases": ["default"]}
                self._answer(json.dumps(info).encode(), "application/json")
            else:
                self._answer(b"")  # the ping

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            fake().requests.append(("POST", self.path, self._headers(), body))
            self._answer(json.dumps({"id_token": fake().token}).encode(), "application/json")

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def fake_google(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGoogle]:
    """Fake Google endpoints; google-auth's metadata address points at them, and no
    key file is configured unless a test sets one."""
    state: list[FakeGoogle] = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(lambda: state[0]))
    host = f"127.0.0.1:{server.server_address[1]}"
    state.append(FakeGoogle(host, make_jwt(time.time() + 3600), []))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # google-auth reads GCE_METADATA_HOST when it is imported, GCE_METADATA_IP per ping.
    monkeypatch.setattr(metadata, "_GCE_METADATA_HOST", host)
    monkeypatch.setenv("GCE_METADATA_IP", host)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    try:
        yield state[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_google_auth_gets_the_token_from_the_metadata_server(fake_google: FakeGoogle) -> None:
    # google-auth's expiries are naive UTC: away from UTC, reading them as local time
    # would be hours off.
    with pytest.MonkeyPatch.context() as zone:
        zone.setenv("TZ", "America/New_York")
        time.tzset()
        try:
            token = GoogleAuthSource()(RUN_APP)
        finally:
            zone.undo()
            time.tzset()
    assert token.value == fake_google.token
    assert token.expires_at == pytest.approx(jwt_expiry(fake_google.token), abs=1)
    identity = [r for r in fake_google.requests if "identity" in r[1]]
    assert len(identity) == 1
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(identity[0][1]).query)
    assert query["audience"] == [RUN_APP]
    assert identity[0][2]["metadata-flavor"] == "Google"


def test_automatic_mode_on_google_cloud_uses_the_metadata_server(
    fake_google: FakeGoogle,
) -> None:
    tokens = id_tokens_for(None, f"{RUN_APP}/", environ={"GCE_METADATA_HOST": fake_google.host})
    assert tokens.get() == fake_google.token


def test_off_google_cloud_automatic_mode_never_touches_the_metadata_server(
    fake_google: FakeGoogle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "find_sources", no_sources)
    assert id_tokens_for(None, RUN_APP, environ={}).get() is None
    with pytest.raises(AuthError):
        id_tokens_for(True, RUN_APP, environ={}).get()
    assert fake_google.requests == []


def test_google_auth_gets_the_token_with_a_service_account_key(
    fake_google: FakeGoogle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    key = tmp_path / "key.json"
    key.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "test",
                "private_key_id": "1",
                "private_key": pem,
                "client_email": "runner@test.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": f"http://{fake_google.host}/token",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    tokens = id_tokens_for(True, RUN_APP, environ={"GOOGLE_APPLICATION_CREDENTIALS": str(key)})
    assert tokens.get() == fake_google.token
    # The key file's own grant; the metadata server was never pinged.
    assert [(method, path) for method, path, _, _ in fake_google.requests] == [("POST", "/token")]
    grant = urllib.parse.parse_qs(fake_google.requests[0][3].decode())
    assert grant["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
