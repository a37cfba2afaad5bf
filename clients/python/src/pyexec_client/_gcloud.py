"""The developer's own Google login: ``gcloud auth print-identity-token``.

The fallback after google-auth, which cannot mint ID tokens from a user's login. The
token's audience is gcloud's own client id, which Cloud Run accepts for the service's
invokers.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from pyexec_client._tokens import IdToken, TokenUnavailableError, token_from_jwt

GCLOUD_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class GcloudSource:
    """Tokens from the gcloud executable at ``executable``."""

    executable: str
    name: str = "gcloud auth print-identity-token"

    def __call__(self, audience: str) -> IdToken:
        """A fresh token; gcloud picks the audience (see the module docstring)."""
        try:
            completed = subprocess.run(
                [self.executable, "auth", "print-identity-token"],
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                timeout=GCLOUD_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TokenUnavailableError(f"{self.name} could not run: {exc}") from exc
        token = completed.stdout.strip()
        if completed.returncode != 0 or not token:
            said = completed.stderr.strip().splitlines()
            detail = said[-1] if said else f"exit code {completed.returncode}"
            raise TokenUnavailableError(f"{self.name} failed: {detail}")
        return token_from_jwt(token)
