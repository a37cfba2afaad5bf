"""Which credentials a request carries: the API key, a Google ID token, or both.

Cloud Run's IAM reads the ID token from ``Authorization``, or from
``X-Serverless-Authorization`` when that header is present; pyexec reads its API key
from ``Authorization: Bearer`` first, then ``X-API-Key``. So a request with both puts
the token in ``X-Serverless-Authorization`` and the key in ``X-API-Key``, where neither
reader can take one for the other. The client never logs either.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.parse
from collections.abc import Mapping

from pyexec_client._google import find_sources
from pyexec_client._tokens import IdToken, TokenProvider, TokenUnavailableError
from pyexec_client.errors import AuthError

# Fetch a new token this long before the cached one expires.
EXPIRY_MARGIN_SECONDS = 120.0


def auth_headers(api_key: str | None, id_token: str | None) -> dict[str, str]:
    """The credential headers of a request (see the module docstring)."""
    headers: dict[str, str] = {}
    if api_key is not None:
        headers["X-API-Key"] = api_key
    if id_token is not None:
        name = "X-Serverless-Authorization" if api_key is not None else "Authorization"
        headers[name] = f"Bearer {id_token}"
    return headers


def audience_for(url: str) -> str:
    """The ID token's audience for a service URL: ``scheme://host``, as Cloud Run wants."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}"


def is_cloud_run(url: str) -> bool:
    """Whether ``url`` is a Cloud Run service's own address (``*.run.app``)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    return host.lower().rstrip(".").endswith(".run.app")


class FirstToken:
    """The first token any of ``sources`` gives, trying them in order."""

    def __init__(self, sources: tuple[TokenProvider, ...]) -> None:
        self.sources = sources

    def __call__(self, audience: str) -> IdToken:
        """A fresh token, or TokenUnavailableError naming why each source failed."""
        failures = []
        for source in self.sources:
            try:
                return source(audience)
            except TokenUnavailableError as exc:
                failures.append(str(exc))
        raise TokenUnavailableError("; ".join(failures) or "no token source")


class IdTokens:
    """The ID token part of a client: none, required, or automatic (best effort).

    A token is fetched on first use and kept until ``EXPIRY_MARGIN_SECONDS`` before it
    expires; fetching is serialised, so threads sharing a client fetch once.
    """

    def __init__(
        self,
        provider: TokenProvider | None,
        audience: str,
        *,
        required: bool,
        unusable: tuple[str, ...] = (),
    ) -> None:
        self.provider = provider
        self.audience = audience
        self.required = required
        # Why no token went out, for the message of a refusal (AuthError).
        self.why_none: str | None = "; ".join(unusable) or None
        self._cached: IdToken | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"IdTokens(audience={self.audience!r}, required={self.required})"

    def needs_fetch(self) -> bool:
        """Whether ``get`` would fetch a token (which blocks) rather than use the cache."""
        cached = self._cached
        return self.provider is not None and (
            cached is None or cached.expires_at - EXPIRY_MARGIN_SECONDS <= time.time()
        )

    def get(self) -> str | None:
        """The token for the next request; None when none is to be sent."""
        if self.provider is None:
            if self.required:
                raise AuthError(f"google_auth=True, but no ID token can be had: {self.why_none}")
            return None
        with self._lock:
            cached = self._cached
            if cached is None or self.needs_fetch():
                try:
                    cached = self._cached = self.provider(self.audience)
                except TokenUnavailableError as exc:
                    if self.required:
                        raise AuthError(f"No Google ID token could be had: {exc}") from exc
                    # Best effort gives up for this client: a source that failed (gcloud
                    # without a login) would fail again, and cost each request its time.
                    self.provider = None
                    self.why_none = str(exc)
                    return None
            return cached.value


def id_tokens_for(
    google_auth: bool | TokenProvider | None,
    url: str,
    environ: Mapping[str, str] | None = None,
) -> IdTokens:
    """What ``google_auth`` means for ``url``: False never, True required, None
    automatic (a ``*.run.app`` host and a source found without probing the network),
    a callable: that provider, required."""
    audience = audience_for(url)
    if google_auth is False:
        return IdTokens(None, audience, required=False)
    if callable(google_auth):
        return IdTokens(google_auth, audience, required=True)
    if google_auth is None and not is_cloud_run(url):
        return IdTokens(None, audience, required=False, unusable=("not a *.run.app URL",))
    sources = find_sources(os.environ if environ is None else environ)
    provider = FirstToken(sources.usable) if sources.usable else None
    return IdTokens(provider, audience, required=google_auth is True, unusable=sources.unusable)
