"""The JSON Schemas in schemas/, loaded once, and request validation with clear messages."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


class RequestError(ValueError):
    """The request body does not match schemas/request.schema.json."""


@cache
def load_schema(name: str) -> dict[str, Any]:
    """One schema file by name (``request``, ``success``, ``error``), parsed once."""
    with open(SCHEMA_DIR / f"{name}.schema.json", encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    Draft202012Validator.check_schema(schema)
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
    """Validates execute requests against the request schema and the settings' limits."""

    def __init__(self, max_script_chars: int) -> None:
        schema = copy.deepcopy(load_schema("request"))
        schema["properties"]["script"]["maxLength"] = max_script_chars
        self.max_script_chars = max_script_chars
        self._validator = Draft202012Validator(schema)

    def validate(self, body: Any) -> str:
        """Return the script, or raise RequestError with one sentence saying what to fix."""
        errors = sorted(self._validator.iter_errors(body), key=lambda e: e.path)
        if errors:
            raise RequestError(self._message(body, errors[0]))
        script: str = body["script"]
        return script

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
                extra = sorted(set(body) - {"script"})
                return (
                    f'Unknown field(s) {", ".join(map(repr, extra))}; only "script" is accepted.'
                )
        value: Any = problem.instance
        if problem.validator == "type":
            return f'"script" must be a string of Python source, not {_json_type(value)}.'
        if problem.validator == "minLength":
            return '"script" is empty; send Python source that defines main().'
        if problem.validator == "maxLength":
            return f'"script" has {len(value)} characters; the limit is {self.max_script_chars}.'
        if problem.validator == "pattern":
            return '"script" contains a null byte (\\u0000), which Python source cannot contain.'
        return f"The request does not match the request schema: {problem.message}."
