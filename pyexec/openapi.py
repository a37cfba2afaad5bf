"""The OpenAPI 3.1 document of the service, built from the JSON Schemas in schemas/.

OpenAPI 3.1 schema objects are JSON Schema 2020-12, so each schema file becomes a
component as it is; references between files are rewritten to point into the
document. The request schema carries this server's configured maxima.
"""

from __future__ import annotations

import copy
from typing import Any

from pyexec.schemas import SCHEMA_NAMES, load_schema, request_schema
from pyexec.settings import Settings

JSON = "application/json"


def _component(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema file as a component: no $id/$schema, refs into #/components/schemas."""

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key in ("$id", "$schema"):
                    continue
                if key == "$ref" and isinstance(value, str) and ".schema.json" in value:
                    name, _, pointer = value.partition(".schema.json")
                    value = f"#/components/schemas/{name}{pointer.lstrip('#')}"
                out[key] = rewrite(value)
            return out
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        return node

    result: dict[str, Any] = rewrite(copy.deepcopy(schema))
    return result


def _answer(description: str, schema: str, headers: dict[str, Any] | None = None) -> Any:
    response: dict[str, Any] = {
        "description": description,
        "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }
    if headers:
        response["headers"] = headers
    return response


def _errors(*statuses: int) -> dict[str, Any]:
    described = {
        "400": "A bad request, or the script failed (see `kind`).",
        "404": "Unknown path.",
        "401": "PYEXEC_API_KEYS is set and no valid key came.",
        "405": "Wrong method; the Allow header names the right one.",
        "408": "The request body did not arrive in time.",
        "413": "The body is over the size limit (refused before it is read).",
        "415": "The body is not JSON.",
        "403": "Refused by the HTTP server itself (a proxy or TLS request it does not take).",
        "414": "The request line is longer than the server takes.",
        "417": "An Expect header other than 100-continue.",
        "431": "Too many header fields, or one too long.",
        "501": "A transfer coding the server does not support.",
        "500": "A fault of the service itself; no internals in the body.",
        "503": "Not now: overloaded, shutting_down, starting (the self-test still runs) or "
        "sandbox_unavailable (nothing runs here); Retry-After says when to retry.",
    }
    retry = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}}
    return {
        str(status): _answer(described[str(status)], "error", retry if status == 503 else None)
        for status in statuses
    }


def _page_path(settings: Settings) -> dict[str, Any]:
    """GET /, the try-it page (pyexec/page.py): HTML, not JSON; absent with PYEXEC_PAGE=off."""
    if not settings.page:
        return {}
    page = {
        "operationId": "page",
        "summary": "The try-it page: write a script, run it, see its answer",
        "description": "One HTML document with its CSS and script inline, allowed by their "
        "hashes in its Content-Security-Policy; it calls this API on this origin only.",
        "responses": {
            "200": {
                "description": "The page.",
                "content": {"text/html": {"schema": {"type": "string"}}},
            },
            **_errors(405, 500),
        },
    }
    return {"/": {"get": page}}


def _operation(
    operation_id: str, summary: str, ok: dict[str, Any], *errors: int
) -> dict[str, Any]:
    """One operation: its id, summary, 200 answer and error statuses."""
    return {
        "operationId": operation_id,
        "summary": summary,
        "responses": {"200": ok, **_errors(*errors)},
    }


def _api_paths() -> dict[str, Any]:
    """The JSON endpoints: /execute, /healthz, /runtime and this document."""
    execute = _operation(
        "execute",
        "Run a script once in a fresh jail",
        _answer("main() returned a JSON value.", "success"),
        *(400, 401, 403, 404, 405, 408, 413, 414, 415, 417, 431, 500, 501, 503),
    )
    execute["requestBody"] = {
        "required": True,
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/request"}}},
    }
    document = {
        "description": "The OpenAPI 3.1 document.",
        "content": {JSON: {"schema": {"type": "object"}}},
    }
    return {
        "/execute": {"post": execute},
        "/healthz": {
            "get": _operation(
                "healthz",
                "200 only when a real sandboxed run works",
                _answer("The jail works.", "health"),
                405,
                500,
                503,
            )
        },
        "/runtime": {
            "get": _operation(
                "runtime",
                "What a script gets: Python, packages, pre-imports, limits",
                _answer("Read from a real jail at start-up.", "runtime"),
                401,
                405,
                500,
                503,
            )
        },
        "/openapi.json": {"get": _operation("openapi", "This document", document, 405, 500)},
    }


def build_openapi(settings: Settings) -> dict[str, Any]:
    """The whole document for this server's settings."""
    schemas = {name: _component(load_schema(name)) for name in SCHEMA_NAMES}
    schemas["request"] = _component(request_schema(settings))
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "pyexec",
            "version": "1",
            "description": "Run an untrusted Python script's main() in a one-use nsjail jail.",
        },
        "paths": {**_page_path(settings), **_api_paths()},
        "components": {"schemas": schemas},
    }
