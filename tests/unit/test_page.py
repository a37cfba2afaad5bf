"""pyexec/page.py: the try-it page's headers, its CSP hashes against the blocks it
inlines, the fields it sends against the request schema, what it never does (load
from elsewhere, run inline handlers, write HTML), and its route (none when off).

The page's behaviour in a browser is tested by tests/browser/ (make test-page).
"""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import flask
import pytest

from pyexec import answers, page
from pyexec.openapi import build_openapi
from pyexec.schemas import load_schema
from pyexec.settings import load_settings

HTML = page.PAGE.html.decode("utf-8")
HEADERS = dict(page.PAGE.headers)
SCRIPT_SOURCE = (page.ASSETS_DIR / "page.js").read_text(encoding="utf-8")
CONTROLS = ("input", "textarea", "select", "button")


class Parsed(HTMLParser):
    """The page as a browser's tokenizer reads it: each element's tag and attributes,
    and the text of each inline script and style block."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.blocks: dict[str, list[str]] = {"script": [], "style": []}
        self.labels: list[tuple[str, str]] = []  # (for, text)
        self._block: str | None = None
        self._label: list[str] | None = None
        self._label_for = ""
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.elements.append((tag, attributes))
        if tag in self.blocks:
            self._block = tag
            self.blocks[tag].append("")
        if tag == "label":
            self._label, self._label_for = [], attributes.get("for", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._block:
            self._block = None
        if tag == "label" and self._label is not None:
            self.labels.append((self._label_for, "".join(self._label).strip()))
            self._label = None

    def handle_data(self, data: str) -> None:
        if self._block:
            self.blocks[self._block][-1] += data
        if self._label is not None:
            self._label.append(data)


PARSED = Parsed(HTML)


def policy() -> dict[str, list[str]]:
    """The Content-Security-Policy header as directive -> sources."""
    directives = [part.split() for part in HEADERS["Content-Security-Policy"].split(";")]
    return {words[0]: words[1:] for words in directives}


def sha256_source(text: str) -> str:
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()
    return f"'sha256-{digest}'"


def test_the_page_is_served_with_its_security_headers() -> None:
    assert HEADERS["Content-Type"] == "text/html; charset=utf-8"
    assert HEADERS["X-Content-Type-Options"] == "nosniff"
    assert HEADERS["Referrer-Policy"] == "no-referrer"
    assert HEADERS["Cache-Control"] == "no-cache"
    directives = policy()
    assert list(directives) == [
        "default-src",
        "script-src",
        "style-src",
        "img-src",
        "connect-src",
        "base-uri",
        "form-action",
        "frame-ancestors",
    ]
    assert directives["default-src"] == ["'none'"]
    assert directives["img-src"] == ["data:", "blob:"]
    assert directives["connect-src"] == ["'self'"]
    assert directives["base-uri"] == directives["form-action"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]


def test_the_policy_allows_exactly_the_hashes_of_the_inline_script_and_style() -> None:
    scripts, styles = PARSED.blocks["script"], PARSED.blocks["style"]
    assert len(scripts) == len(styles) == 1
    assert policy()["script-src"] == [sha256_source(scripts[0])]
    assert policy()["style-src"] == [sha256_source(styles[0])]
    # The blocks are the files, byte for byte.
    assert scripts[0] == SCRIPT_SOURCE
    assert styles[0] == (page.ASSETS_DIR / "page.css").read_text(encoding="utf-8")


def test_the_page_loads_nothing_and_runs_nothing_but_its_own_blocks() -> None:
    for tag, attributes in PARSED.elements:
        handlers = [name for name in attributes if name.startswith("on")]
        assert handlers == [], f"<{tag}> has inline handlers {handlers}: the CSP blocks them"
        assert "style" not in attributes, f"<{tag} style=...>: the CSP blocks it"
        for name in ("src", "href", "action", "formaction", "srcset", "poster"):
            value = attributes.get(name)
            if value is None:
                continue
            assert not re.match(r"([a-z][a-z0-9+.-]*:)?//", value, re.IGNORECASE), value
            assert not value.lower().startswith("javascript:"), value
        if tag == "script":
            assert "src" not in attributes
        if tag == "link":
            assert attributes == {"rel": "icon", "href": "data:,"}
    assert "http://" not in HTML
    assert "https://" not in HTML


def test_the_script_writes_text_never_html() -> None:
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in SCRIPT_SOURCE, sink
    assert "new Function" not in SCRIPT_SOURCE
    assert "setAttribute(" not in SCRIPT_SOURCE


def test_the_script_is_kept_in_local_storage_and_the_key_in_session_storage_only() -> None:
    assert re.findall(r"store\((\w+Storage), (\w+)", SCRIPT_SOURCE) == [
        ("localStorage", "SCRIPT_STORE"),
        ("sessionStorage", "KEY_STORE"),
    ]


def test_the_page_has_one_control_for_each_field_of_the_request_schema() -> None:
    fields = [
        attributes["data-field"]
        for tag, attributes in PARSED.elements
        if tag in CONTROLS and "data-field" in attributes
    ]
    # tests/browser checks that the body the page sends has them all, and is valid.
    assert sorted(fields) == sorted(load_schema("request")["properties"])


def test_every_control_has_a_label_or_text() -> None:
    labelled = {target for target, text in PARSED.labels if target and text}
    for tag, attributes in PARSED.elements:
        if tag in ("input", "textarea", "select"):
            assert attributes.get("id") in labelled, f"<{tag} id={attributes.get('id')}>"
    buttons = re.findall(r"<button[^>]*>([^<]*)</button>", HTML)
    assert buttons
    assert all(text.strip() for text in buttons)


def test_the_editor_says_how_to_leave_it() -> None:
    assert "press Esc, then Tab" in HTML
    assert "Ctrl+Enter" in HTML


@pytest.mark.parametrize(
    ("template", "css", "js", "message"),
    [
        ("<html></html>", "", "", "index.html must hold <!-- page.css --> exactly once"),
        (
            "<!-- page.css --><!-- page.js --><!-- page.js -->",
            "",
            "",
            "index.html must hold <!-- page.js --> exactly once",
        ),
        (
            "<!-- page.css --><!-- page.js -->",
            "",
            "x = '</SCRIPT>'",
            "an inline block must not contain </script",
        ),
    ],
    ids=["no marker", "a marker twice", "a block that would end early"],
)
def test_a_page_that_cannot_be_hashed_as_served_is_refused(
    tmp_path: Path, template: str, css: str, js: str, message: str
) -> None:
    (tmp_path / "index.html").write_text(template, encoding="utf-8")
    (tmp_path / "page.css").write_text(css, encoding="utf-8")
    (tmp_path / "page.js").write_text(js, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(message)):
        page.build_page(tmp_path)


def test_get_and_head_serve_the_page_and_its_headers() -> None:
    app = flask.Flask("page")
    app.add_url_rule(
        "/",
        "page",
        lambda: answers.to_response(page.serve(flask.request)),
        methods=["GET", "HEAD"],
    )
    client = app.test_client()
    got = client.get("/")
    assert got.status_code == 200
    assert got.data == page.PAGE.html
    for name, value in page.PAGE.headers:
        assert got.headers[name] == value
    head = client.head("/")
    assert head.status_code == 200
    assert head.data == b""
    assert head.headers["Content-Length"] == str(len(page.PAGE.html))
    assert head.headers["Content-Security-Policy"] == HEADERS["Content-Security-Policy"]


def test_the_page_is_routed_for_get_and_head_unless_it_is_off() -> None:
    assert page.routes(load_settings({})) == {"/": (("GET", "HEAD"), page.serve)}
    assert page.routes(load_settings({"PYEXEC_PAGE": "on"})) == {
        "/": (("GET", "HEAD"), page.serve)
    }
    # Off: main.py has no route for "/", so it is a 404 like any unknown path.
    assert page.routes(load_settings({"PYEXEC_PAGE": "off"})) == {}


def test_the_openapi_document_lists_the_page_as_html_only_when_it_is_on() -> None:
    document = build_openapi(load_settings({}))
    operation = document["paths"]["/"]["get"]
    assert operation["operationId"] == "page"
    assert list(operation["responses"]["200"]["content"]) == ["text/html"]
    assert "/" not in build_openapi(load_settings({"PYEXEC_PAGE": "off"}))["paths"]
