"""GET /openapi.json, and a property-based fuzz of the API against that document:
no 500, and every answer matches the schema the document gives for its status."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


def get_document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.get_json()
    return document


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def response_validator(document: dict[str, Any], path: str, method: str, status: int) -> Any:
    """The validator for the documented answer, or fail if the status is undocumented."""
    responses = document["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} answered undocumented {status}"
    ref = responses[str(status)]["content"]["application/json"]["schema"]
    registry: Registry[Any] = Registry().with_resource(
        "urn:pyexec-openapi", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    schema = {"$ref": "urn:pyexec-openapi" + ref["$ref"]} if "$ref" in ref else ref
    return Draft202012Validator(schema, registry=registry)


def test_document_is_openapi_3_1_built_from_the_schemas(app_client: FlaskClient) -> None:
    document = get_document(app_client)
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {"/execute", "/healthz", "/runtime", "/openapi.json", "/"}
    schemas = document["components"]["schemas"]
    assert set(schemas) == {"request", "success", "error", "health", "run", "runtime"}
    request = schemas["request"]
    assert request["properties"]["script"]["maxLength"] == 100_000
    assert request["properties"]["timeout_seconds"]["maximum"] == 60
    refs: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            refs.extend(v for k, v in node.items() if k == "$ref")
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(document)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        assert isinstance(resolve(document, ref), dict), ref
    for schema in schemas.values():
        Draft202012Validator.check_schema(schema)


def test_real_answers_match_the_document(app_client: FlaskClient) -> None:
    document = get_document(app_client)
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("get", "/healthz", {}),
        ("get", "/openapi.json", {}),
        ("post", "/execute", {"json": {"script": "def main():\n    return [1]\n"}}),
        ("post", "/execute", {"json": {"script": "def main(:\n"}}),
        ("post", "/execute", {"data": "x", "content_type": "text/plain"}),
        ("put", "/execute", {}),
    ]
    for method, path, kwargs in calls:
        response = app_client.open(path, method=method.upper(), **kwargs)
        documented = "post" if path == "/execute" else "get"
        validator = response_validator(document, path, documented, response.status_code)
        validator.validate(response.get_json())


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)
snippets = st.sampled_from(
    [
        "def main():\n    return {}\n",
        "def main():\n    return [1, 2.5, None, 'x']\n",
        "def main():\n    print('\\udcff')\n    return '\\ud800'\n",
        "def main():\n    return 10 ** 400\n",
        "def main():\n    return float('nan')\n",
        "def main():\n    raise ValueError('x' * 100000)\n",
        "import sys\ndef main():\n    sys.stderr.write('e')\n    return sys.maxsize\n",
        "main = lambda: (1, 2)\n",
        "class main:\n    pass\n",
        "def main():\n    return {'k': object()}\n",
    ]
)
scripts = snippets | st.text(max_size=200)
limit_values = st.none() | st.integers(-5, 2000) | st.floats(-1, 100) | st.text()
bodies = (
    st.fixed_dictionaries(
        {"script": scripts},
        optional={
            "timeout_seconds": limit_values,
            "cpu_seconds": limit_values,
            "memory_mb": limit_values,
            "extra": json_values,
        },
    )
    | json_values
)


@settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=bodies)
def test_fuzz_execute_never_500_and_always_documented(app_client: FlaskClient, body: Any) -> None:
    document = get_document(app_client)
    if isinstance(body, dict) and isinstance(body.get("timeout_seconds"), (int, float)):
        body["timeout_seconds"] = min(body["timeout_seconds"], 3)
    response = app_client.post(
        "/execute", data=json.dumps(body, allow_nan=False), content_type="application/json"
    )
    assert response.status_code != 500
    response_validator(document, "/execute", "post", response.status_code).validate(
        response.get_json()
    )


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    raw=st.binary(max_size=300),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "application/x-www-form-urlencoded"]
    ),
)
def test_fuzz_raw_bodies_never_500(app_client: FlaskClient, raw: bytes, content_type: str) -> None:
    response = app_client.post("/execute", data=raw, content_type=content_type)
    assert response.status_code in (400, 415)
    document = get_document(app_client)
    response_validator(document, "/execute", "post", response.status_code).validate(
        response.get_json()
    )
