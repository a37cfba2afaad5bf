"""The try-it page at ``GET /``: one HTML document, its CSS and script inline, allowed
by their hashes in the Content-Security-Policy.

Built once, at import, from ``pyexec/page_assets/``: ``index.html`` with ``page.css``
and ``page.js`` put in place of its two markers. The policy names the SHA-256 of
exactly those two blocks, so the browser runs no other script and applies no other
style (no ``style=`` or ``on...=`` attribute either); it fetches from this origin only
(``connect-src 'self'``) and shows images from ``data:`` and ``blob:`` URLs only (the
files a script returns). Nothing is fetched from elsewhere: no CDN, no build step, no
other route. ``PYEXEC_PAGE=off`` removes the route: ``/`` is then a 404 like any
unknown path.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import flask

from pyexec.answers import Outcome
from pyexec.settings import Settings

ASSETS_DIR = Path(__file__).resolve().parent / "page_assets"
STYLE_MARKER = "<!-- page.css -->"
SCRIPT_MARKER = "<!-- page.js -->"

Route = tuple[tuple[str, ...], Callable[[flask.Request], Outcome]]


@dataclass(frozen=True)
class Page:
    """The page's bytes and the headers it is served with."""

    html: bytes
    headers: tuple[tuple[str, str], ...]


def source_hash(block: str) -> str:
    """A CSP hash source for an inline block: its UTF-8 text's SHA-256, in base64."""
    digest = hashlib.sha256(block.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def content_security_policy(script: str, style: str) -> str:
    """The policy that allows the page's one script and one style block, and no more."""
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src {source_hash(script)}",
            f"style-src {source_hash(style)}",
            "img-src data: blob:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def build_page(assets_dir: Path = ASSETS_DIR) -> Page:
    """index.html with page.css and page.js inlined, and its headers."""
    template = (assets_dir / "index.html").read_text(encoding="utf-8")
    style = (assets_dir / "page.css").read_text(encoding="utf-8")
    script = (assets_dir / "page.js").read_text(encoding="utf-8")
    blocks = ((STYLE_MARKER, style, "</style"), (SCRIPT_MARKER, script, "</script"))
    for marker, block, end in blocks:
        if template.count(marker) != 1:
            raise ValueError(f"index.html must hold {marker} exactly once")
        # Such a text would end the inline block early, and the hash would not match.
        if end in block.lower():
            raise ValueError(f"an inline block must not contain {end}")
    html = template.replace(STYLE_MARKER, f"<style>{style}</style>").replace(
        SCRIPT_MARKER, f"<script>{script}</script>"
    )
    headers = (
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Security-Policy", content_security_policy(script, style)),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("Cache-Control", "no-cache"),
    )
    return Page(html.encode("utf-8"), headers)


PAGE = build_page()


def serve(_request: flask.Request) -> Outcome:
    """GET / (and HEAD): the page."""
    return Outcome(200, {}, PAGE.headers, raw=PAGE.html)


def routes(settings: Settings) -> dict[str, Route]:
    """main.py's route for the page: ``/`` when PYEXEC_PAGE is on, none when off."""
    return {"/": (("GET", "HEAD"), serve)} if settings.page else {}
