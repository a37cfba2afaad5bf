"""API keys (PYEXEC_API_KEYS): which request headers carry one, and whether it matches.

Shared by the endpoint that runs scripts (pyexec/api.py) and by the body limit
(pyexec/bodylimit.py), which checks the key before it reserves or reads a body: a
client without a key must not be able to fill the in-flight budget with stalled
bodies.
"""

from __future__ import annotations

import hmac

REFUSAL = "A valid API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'."


def supplied_key(authorization: str, x_api_key: str) -> str:
    """The key a request sends: ``Authorization: Bearer KEY``, else ``X-API-Key``."""
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return x_api_key.strip()


def key_matches(api_keys: tuple[str, ...], authorization: str, x_api_key: str) -> bool:
    """Whether the request's key is one of ``api_keys``, each compared in constant time
    (every key is compared, so the time does not say which one came close)."""
    supplied = supplied_key(authorization, x_api_key).encode()
    matched = False
    for key in api_keys:
        matched |= hmac.compare_digest(supplied, key.encode())
    return matched
