"""Google ID tokens as the client holds them: the value (never shown) and its expiry."""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# Tokens whose expiry cannot be read are kept this long (Google's last an hour).
UNKNOWN_LIFETIME_SECONDS = 300.0


@dataclass(frozen=True)
class IdToken:
    """An ID token and when it expires (seconds since the epoch). ``repr`` leaves
    the value out, so a token never reaches a log or a traceback through it."""

    value: str = field(repr=False)
    expires_at: float


# Gets a fresh token for an audience (``scheme://host`` of the service). What
# ``google_auth=`` accepts besides True/False/None, e.g. for tests or another source.
TokenProvider = Callable[[str], IdToken]


class TokenUnavailableError(Exception):
    """A token source could not give a token; the message says why, without secrets."""


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, read without verifying it (the service verifies)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    expiry = claims.get("exp") if isinstance(claims, dict) else None
    return float(expiry) if isinstance(expiry, int | float) else None


def token_from_jwt(token: str) -> IdToken:
    """An IdToken expiring at the JWT's ``exp``, or soon when it cannot be read."""
    expiry = jwt_expiry(token)
    return IdToken(token, expiry if expiry is not None else time.time() + UNKNOWN_LIFETIME_SECONDS)
