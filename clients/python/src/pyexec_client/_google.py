"""Where a Google ID token can come from here, found without touching the network.

google-auth's ``fetch_id_token`` tries a service-account key file
(``GOOGLE_APPLICATION_CREDENTIALS``), then pings the metadata server, which off Google
Cloud costs seconds of timeouts and a request to an address the caller never asked
for. So the client only lets it run where one of those two cannot miss: a key file
of a type it reads, or a machine that says it is on Google Cloud (its environment or
its DMI product name, read from a local file). gcloud comes last, for a developer's
own login.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pyexec_client._gcloud import GcloudSource
from pyexec_client._tokens import (
    IdToken,
    TokenProvider,
    TokenUnavailableError,
    token_from_jwt,
)

DMI_PRODUCT_NAME = Path("/sys/class/dmi/id/product_name")
# Set by Cloud Run services and jobs, Cloud Functions and App Engine; GCE_METADATA_HOST
# is google-auth's own override of the metadata server's address.
GOOGLE_CLOUD_VARIABLES = (
    "K_SERVICE",
    "CLOUD_RUN_JOB",
    "FUNCTION_TARGET",
    "GAE_APPLICATION",
    "GCE_METADATA_HOST",
)
# The key files google-auth turns into ID tokens (fetch_id_token_credentials).
ID_TOKEN_KEY_TYPES = ("service_account", "impersonated_service_account")
INSTALL_HINT = "pip install 'pyexec-client[google]'"


@dataclass(frozen=True)
class Sources:
    """The token sources usable here, in order, and why each other one is not."""

    usable: tuple[TokenProvider, ...]
    unusable: tuple[str, ...]


def on_google_cloud(environ: Mapping[str, str], dmi_product_name: Path = DMI_PRODUCT_NAME) -> bool:
    """Whether this machine says it runs on Google Cloud, from local facts only."""
    if any(environ.get(name) for name in GOOGLE_CLOUD_VARIABLES):
        return True
    try:
        return dmi_product_name.read_text(encoding="utf-8").strip().startswith("Google")
    except OSError:
        return False


def key_file_type(environ: Mapping[str, str]) -> str | None:
    """The ``type`` of the key file in GOOGLE_APPLICATION_CREDENTIALS, if readable."""
    path = environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if not path:
        return None
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    kind = info.get("type") if isinstance(info, dict) else None
    return kind if isinstance(kind, str) else None


def find_sources(
    environ: Mapping[str, str],
    *,
    which: Callable[[str], str | None] = shutil.which,
    dmi_product_name: Path = DMI_PRODUCT_NAME,
    google_auth_installed: bool | None = None,
) -> Sources:
    """The sources to try, in order: google-auth (key file or metadata server), gcloud."""
    if google_auth_installed is None:
        google_auth_installed = _installed("google.oauth2") and _installed("requests")
    usable: list[TokenProvider] = []
    unusable: list[str] = []
    key_type = key_file_type(environ)
    google_cloud = on_google_cloud(environ, dmi_product_name)
    if key_type in ID_TOKEN_KEY_TYPES or google_cloud:
        if google_auth_installed:
            usable.append(GoogleAuthSource())
        else:
            unusable.append(f"google-auth is not installed ({INSTALL_HINT})")
    else:
        unusable.append(
            "no service-account key in GOOGLE_APPLICATION_CREDENTIALS, and not on Google "
            "Cloud (the metadata server is not probed elsewhere)"
        )
    gcloud = which("gcloud")
    if gcloud:
        usable.append(GcloudSource(gcloud))
    else:
        unusable.append("gcloud is not on PATH")
    return Sources(tuple(usable), tuple(unusable))


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


class GoogleAuthSource:
    """Tokens from google-auth: a service-account key file or the metadata server."""

    name = "google-auth"

    def __call__(self, audience: str) -> IdToken:
        """A fresh token for ``audience``, with the expiry google-auth read from it."""
        # Imported here: google-auth is an extra, and costs its import only when used.
        import google.auth.exceptions
        import google.auth.transport.requests
        from google.oauth2 import id_token

        request = google.auth.transport.requests.Request()
        try:
            credentials = id_token.fetch_id_token_credentials(audience, request=request)
            credentials.refresh(request)
        # Beyond its own errors, google-auth lets a malformed answer from the metadata
        # server or a broken key file through as whatever it caused.
        except (
            google.auth.exceptions.GoogleAuthError,
            OSError,
            LookupError,
            TypeError,
            ValueError,
        ) as exc:
            raise TokenUnavailableError(f"google-auth: {exc or type(exc).__name__}") from exc
        finally:
            request.session.close()
        token = credentials.token
        if not isinstance(token, str) or not token:
            raise TokenUnavailableError("google-auth gave no ID token")
        expiry = credentials.expiry
        if isinstance(expiry, datetime.datetime):
            # google-auth's expiries are naive UTC.
            return IdToken(token, expiry.replace(tzinfo=datetime.timezone.utc).timestamp())
        return token_from_jwt(token)
