"""Run inputs against a SELF_SERVE_TRIGGER's Port `userInputs`.

Port's `userInputs` is JSON Schema plus Port-only keywords (`blueprint`, `dataset`, `visible`,
`dependsOn`, `enumColors`, ...) that plain validation ignores, and `{"jqQuery": ...}` values (dynamic
`required`, `default`, `enum`, `visible`) that only make sense in Port's form: those are dropped.
Port formats (`entity`, `user`, `team`, `yaml`, `multi-line`, `markdown`, `labeled-url`, ...) only
annotate; `email`, `date-time`, `url` and `uri` are checked.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.protocols import Validator

from libs.core import pointer as jp
from libs.core.errors import InputError, Issue
from libs.core.schema_dialect import issues, make_validator

INPUTS_POINTER = "/inputs"

_FORMATS = FormatChecker(formats=())
_META_VALIDATOR = Draft202012Validator(Draft202012Validator.META_SCHEMA)


@_FORMATS.checks("email")
def _is_email(value: object) -> bool:
    if not isinstance(value, str):
        return True
    local, at, domain = value.rpartition("@")
    return bool(local and at and domain) and " " not in value


@_FORMATS.checks("date-time")
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True


@_FORMATS.checks("url")
@_FORMATS.checks("uri")
def _is_url(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme and (parts.netloc or parts.scheme in ("mailto", "urn")))


def is_jq_query(value: Any) -> bool:
    """`{"jqQuery": "..."}`: a value Port computes in its form."""
    return isinstance(value, dict) and "jqQuery" in value


def _strip_jq_queries(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_jq_queries(v) for k, v in value.items() if not is_jq_query(v)}
    if isinstance(value, list):
        return [_strip_jq_queries(v) for v in value]
    return value


def input_schema(user_inputs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The JSON Schema that run inputs must satisfy (unknown inputs are checked separately)."""
    user_inputs = user_inputs or {}
    properties = user_inputs.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    required = user_inputs.get("required")
    return {
        "type": "object",
        "properties": {k: _strip_jq_queries(v) for k, v in properties.items()},
        "required": [r for r in required if isinstance(r, str)] if isinstance(required, list) else [],
    }


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Validator:
    return make_validator(json.loads(schema_json), format_checker=_FORMATS)


def validate_inputs(user_inputs: Mapping[str, Any] | None, inputs: Any) -> dict[str, Any]:
    """The inputs with literal `default`s filled in, or `InputError` listing every problem with a
    pointer under `/inputs`."""
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, dict):
        raise InputError("inputs must be an object", [Issue(INPUTS_POINTER, "inputs must be an object")])
    schema = input_schema(user_inputs)
    declared: dict[str, Any] = schema["properties"]
    found = _unknown_inputs(inputs, declared)
    completed = with_defaults(user_inputs, inputs)
    validator = _validator(json.dumps(schema, sort_keys=True))
    found += issues(validator, completed, INPUTS_POINTER, "inputs")
    if found:
        raise InputError("invalid inputs: " + "; ".join(i.message for i in found[:5]), found)
    return completed


def with_defaults(user_inputs: Mapping[str, Any] | None, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """`inputs` plus the literal defaults of declared inputs that are missing (jq defaults skipped)."""
    properties = (user_inputs or {}).get("properties")
    completed = dict(inputs)
    for name, spec in (properties if isinstance(properties, dict) else {}).items():
        if name not in completed and isinstance(spec, dict) and "default" in spec:
            if not is_jq_query(spec["default"]):
                completed[name] = copy.deepcopy(spec["default"])
    return completed


def _unknown_inputs(inputs: Mapping[str, Any], declared: Mapping[str, Any]) -> list[Issue]:
    names = ", ".join(declared) if declared else "none"
    return [
        Issue(jp.join(INPUTS_POINTER, key), f"unknown input {key!r}; declared inputs: {names}")
        for key in inputs
        if key not in declared
    ]


def user_inputs_issues(user_inputs: Any, pointer: str) -> list[Issue]:
    """Definition-time checks of a trigger's `userInputs` (at `pointer`) beyond its config schema:
    `required`/`order` name declared inputs, and each input is a valid JSON Schema."""
    if not isinstance(user_inputs, dict) or not isinstance(user_inputs.get("properties"), dict):
        return []  # the config schema reports it
    declared = user_inputs["properties"]
    found: list[Issue] = []
    for key in ("required", "order"):
        names = user_inputs.get(key)
        for index, name in enumerate(names if isinstance(names, list) else []):
            if isinstance(name, str) and name not in declared:
                found.append(Issue(jp.join(pointer, key, index), f"{key} names an undeclared input {name!r}"))
    found += issues(_META_VALIDATOR, input_schema(user_inputs), pointer, "userInputs")
    return found
