"""The JSON Schemas in schemas/, loaded once, and request validation with clear messages."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

from pyexec.errors import RequestError
from pyexec.payload import Payload, payload_from_body
from pyexec.settings import Limits, Settings

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


@cache
def load_schema(name: str) -> dict[str, Any]:
    """One schema file by name (``request``, ``success``, ``error``), parsed once."""
    with open(SCHEMA_DIR / f"{name}.schema.json", encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    Draft202012Validator.check_schema(schema)
    return schema


SCHEMA_NAMES = ("request", "success", "error", "health", "run", "runtime")


@cache
def registry() -> Registry[Any]:
    """Every schema file by its $id, so that cross-file $refs resolve."""
    resources = [
        (load_schema(name)["$id"], Resource.from_contents(load_schema(name)))
        for name in SCHEMA_NAMES
    ]
    return Registry().with_resources(resources)


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for ``schema`` that resolves refs to the other schema files."""
    return Draft202012Validator(schema, registry=registry())


def inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with each ``{"$ref": "<file>#/$defs/<name>"}`` replaced by a copy of
    its target, which must have no refs of its own: the same schema, but a validator
    need not resolve a reference on every answer it checks (0.2 ms of an answer's
    0.45 ms of checking, issue 20)."""
    by_id = {load_schema(name)["$id"]: load_schema(name) for name in SCHEMA_NAMES}
    base = schema["$id"]

    def resolve(node: Any) -> Any:
        if isinstance(node, list):
            return [resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if not isinstance(ref, str):
            return {key: resolve(value) for key, value in node.items()}
        file, marker, name = ref.partition("#/$defs/")
        if len(node) != 1 or not marker or not file:
            raise ValueError(f"{ref}: only a lone $ref to another file's $defs is inlined")
        target = by_id[urljoin(base, file)]["$defs"][name]
        if "$ref" in json.dumps(target):
            raise ValueError(f"{ref} has refs of its own: not inlined")
        return copy.deepcopy(target)

    result: dict[str, Any] = resolve(schema)
    return result


def request_schema(settings: Settings) -> dict[str, Any]:
    """The request schema with this server's configured maxima filled in."""
    schema = copy.deepcopy(load_schema("request"))
    properties = schema["properties"]
    properties["script"]["maxLength"] = settings.max_script_chars
    properties["timeout_seconds"]["maximum"] = settings.max_timeout_seconds
    properties["cpu_seconds"]["maximum"] = settings.max_cpu_seconds
    properties["memory_mb"]["maximum"] = settings.max_memory_mb
    properties["files"]["maxItems"] = settings.max_files
    return schema


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a string"


class RequestValidator:
    """Validates execute requests against the request schema with the server's maxima."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.schema = request_schema(settings)
        self._validator = validator(self.schema)

    def validate(self, body: Any) -> tuple[str, Limits, Payload]:
        """The script, its limits and its data, or RequestError with one sentence saying
        what to fix."""
        errors = sorted(self._validator.iter_errors(body), key=lambda e: list(e.path))
        if errors:
            problem = errors[0]
            details: dict[str, Any] = {}
            where = list(problem.absolute_path)
            if where:
                details["field"] = str(where[0])
            if len(where) > 1 and where[0] in ("files", "output_files"):
                details["index"] = where[1]
                item = body[where[0]][where[1]]
                if isinstance(item, dict) and isinstance(item.get("path"), str):
                    details["path"] = item["path"]
            if problem.validator in ("maximum", "maxItems"):
                details["maximum"] = problem.validator_value
            raise RequestError(self._message(body, problem), **details)
        defaults = self.settings.default_limits()
        limits = Limits(
            timeout_seconds=float(body.get("timeout_seconds", defaults.timeout_seconds)),
            cpu_seconds=int(body.get("cpu_seconds", defaults.cpu_seconds)),
            memory_mb=int(body.get("memory_mb", defaults.memory_mb)),
        )
        script: str = body["script"]
        return script, limits, payload_from_body(body, self.settings)

    def _message(self, body: Any, problem: ValidationError) -> str:
        where = list(problem.absolute_path)
        if not where:
            if problem.validator == "type":
                return (
                    f'The request body must be a JSON object like {{"script": "..."}}, '
                    f"not {_json_type(body)}."
                )
            if problem.validator == "required":
                return 'The request body must have a "script" field with Python source.'
            if problem.validator == "additionalProperties":
                allowed = set(self.schema["properties"])
                extra = ", ".join(repr(name) for name in sorted(set(body) - allowed))
                return (
                    f"Unknown field(s) {extra}; accepted fields are {', '.join(sorted(allowed))}."
                )
        field = str(where[0])
        value: Any = problem.instance
        if field == "script":
            return self._script_message(problem, value)
        if field in ("files", "output_files"):
            return self._files_message(body, field, where, problem)
        if problem.validator == "type":
            wanted = "an integer" if problem.validator_value == "integer" else "a number"
            return f'"{field}" must be {wanted}, not {_json_type(value)}.'
        if problem.validator == "maximum":
            return f'"{field}" is {value}; this server allows at most {problem.validator_value}.'
        if problem.validator in ("minimum", "exclusiveMinimum"):
            relation = "at least" if problem.validator == "minimum" else "more than"
            return f'"{field}" is {value}; it must be {relation} {problem.validator_value}.'
        return f'"{field}" does not match the request schema: {problem.message}.'

    def _files_message(
        self, body: Any, field: str, where: list[Any], problem: ValidationError
    ) -> str:
        """A sentence about a ``files`` or ``output_files`` shape error."""
        if len(where) == 1:
            if problem.validator == "maxItems":
                setting = " (PYEXEC_MAX_FILES)" if field == "files" else ""
                return (
                    f'"{field}" has {len(body[field])} items; this server allows at most '
                    f"{problem.validator_value}{setting}."
                )
            shape = (
                'an array of {"path", "content", "encoding"} objects'
                if field == "files"
                else "an array of glob patterns (strings)"
            )
            return f'"{field}" must be {shape}, not {_json_type(problem.instance)}.'
        at = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in where[1:])
        if problem.validator == "type":
            wanted = "an object" if problem.validator_value == "object" else "a string"
            return f"{field}{at} must be {wanted}, not {_json_type(problem.instance)}."
        if problem.validator == "required":
            return f'{field}{at} must have "path" and "content".'
        if problem.validator == "additionalProperties":
            return f'{field}{at} may only have "path", "content" and "encoding".'
        if problem.validator == "enum":
            return f'{field}{at} must be "utf-8" or "base64".'
        if problem.validator in ("minLength", "maxLength"):
            return (
                f"{field}{at} must be 1 to {256 if field == 'output_files' else 1024} characters."
            )
        return f"{field}{at} does not match the request schema: {problem.message}."

    def _script_message(self, problem: ValidationError, value: Any) -> str:
        if problem.validator == "type":
            return f'"script" must be a string of Python source, not {_json_type(value)}.'
        if problem.validator == "minLength":
            return '"script" is empty; send Python source that defines main().'
        if problem.validator == "maxLength":
            return (
                f'"script" has {len(value)} characters; the limit is '
                f"{self.settings.max_script_chars}."
            )
        if problem.validator == "pattern":
            return '"script" contains a null byte (\\u0000), which Python source cannot contain.'
        return f'"script" does not match the request schema: {problem.message}.'
