"""The JSON Schema dialect Stepline validates with, and how its errors become `Issue`s.

Draft 2020-12, with one difference: `pattern` is ECMA-262 (as the spec says) while Python's `re` is
not, so the identifier pattern `^[\\p{L}0-9@_:-]+$`, which `re` cannot compile, is checked with
`is_valid_identifier`'s rule, and any other pattern `re` cannot compile is skipped rather than crashing.
`pattern` is matched with the `regex` engine (re-compatible) under a deadline, against strings of at
most `MAX_PATTERN_INPUT` characters: a definition's pattern cannot stall the API that checks inputs.
Schemas may carry an `errorMessage` string (as in ajv-errors) that replaces the generated message for
errors of that subschema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, cast

import regex
from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators
from jsonschema.protocols import Validator

from libs.core import pointer as jp
from libs.core.errors import Issue
from libs.core.identifiers import IDENTIFIER_PATTERN

_IDENTIFIER_CHARS = frozenset("0123456789@_:-")
MAX_PATTERN_INPUT = 65_536
"""Characters of a string a schema `pattern` is matched against (longer is invalid)."""
PATTERN_SECONDS = 0.05
"""How long one `pattern` match may backtrack."""
_BOUNDED = ("must be at most", "could not be matched against the pattern")
"""How the messages of a `pattern` error that hit a bound start (they are kept as they are)."""
_TYPE_NAMES = {
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "a boolean",
    "array": "an array",
    "object": "an object",
    "null": "null",
}


def _matches(pattern: str, value: str) -> bool:
    """Whether `value` matches (a match that runs out of time, or a too long value, does not)."""
    return len(value) <= MAX_PATTERN_INPUT and _search(pattern, value) is True


def _search(pattern: str, value: str) -> bool | None:
    """Whether `value` matches, or None when backtracking took longer than `PATTERN_SECONDS`."""
    if pattern == IDENTIFIER_PATTERN:
        return bool(value) and all(c.isalpha() or c in _IDENTIFIER_CHARS for c in value)
    try:
        return regex.search(pattern, value, timeout=PATTERN_SECONDS) is not None
    except TimeoutError:
        return None
    except (regex.error, re.error):
        return True  # an ECMA-only construct Python cannot evaluate: do not guess


def _pattern(
    validator: Validator, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """`pattern` is written by whoever saves the definition and matched in the API against run
    inputs: the input's length is capped and the match has a deadline (the `regex` engine's), so a
    catastrophic pattern fails that one value instead of stalling the API."""
    if not isinstance(instance, str):
        return
    if len(instance) > MAX_PATTERN_INPUT:
        yield ValidationError(f"{_BOUNDED[0]} {MAX_PATTERN_INPUT} characters long to be matched against a pattern")
        return
    matched = _search(pattern, instance)
    if matched is None:
        yield ValidationError(f"{_BOUNDED[1]} {pattern} within {PATTERN_SECONDS * 1000:g} ms")
    elif not matched:
        yield ValidationError(f"{_shown(instance)} does not match {pattern!r}")


def _shown(value: str) -> str:
    return repr(value) if len(value) <= 80 else repr(value[:77] + "...")


def _pattern_properties(
    validator: Validator, patterns: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """`patternProperties`, matched like `pattern` (bounded) instead of with `re`."""
    if not isinstance(instance, dict):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _matches(pattern, key):
                yield from cast(Any, validator).descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Validator, additional: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """`additionalProperties`, with `patternProperties` matched like `pattern` (bounded)."""
    if not isinstance(instance, dict):
        return
    extras = _extras(instance, schema)
    if isinstance(additional, dict):
        for extra in extras:
            yield from cast(Any, validator).descend(instance[extra], additional, path=extra)
    elif additional is False and extras:
        yield ValidationError(f"unexpected {', '.join(repr(e) for e in extras)}")


SteplineValidator: type[Validator] = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, {"pattern": _pattern, "patternProperties": _pattern_properties,
                           "additionalProperties": _additional_properties}
)


def make_validator(schema: Mapping[str, Any], format_checker: FormatChecker | None = None) -> Validator:
    """A validator for a (trusted, well-formed) schema in Stepline's dialect."""
    return SteplineValidator(schema, format_checker=format_checker)


def issues(validator: Validator, instance: Any, base: str, subject: str) -> list[Issue]:
    """Every error of `instance`, each with a pointer under `base` and a message that names the field
    as `subject.path.to[0].field`; sorted by pointer, duplicates dropped."""
    found: dict[tuple[str, str], Issue] = {}
    for error in validator.iter_errors(instance):
        for issue in _issues_of(error, base, subject):
            found.setdefault((issue.pointer, issue.message), issue)
    return sorted(found.values(), key=lambda i: (i.pointer, i.message))


def _issues_of(error: ValidationError, base: str, subject: str) -> Iterable[Issue]:
    path = list(error.absolute_path)
    custom = error.schema.get("errorMessage") if isinstance(error.schema, dict) else None
    if isinstance(custom, str):
        return [Issue(jp.join(base, *path), f"{label(subject, path)} {custom}")]
    if error.validator == "required":
        required: list[str] = list(cast(Any, error.validator_value))
        instance: Any = error.instance
        missing = [p for p in required if p not in instance]
        return [Issue(jp.join(base, *path, m), f"{label(subject, [*path, m])} is required") for m in missing]
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        return [
            Issue(jp.join(base, *path, key), f"{label(subject, [*path, key])} is not an allowed field")
            for key in _unexpected(error)
        ]
    return [Issue(jp.join(base, *path), f"{label(subject, path)} {describe(error)}")]


def _unexpected(error: ValidationError) -> list[str]:
    schema = error.schema if isinstance(error.schema, dict) else {}
    return _extras(error.instance if isinstance(error.instance, dict) else {}, schema)


def _extras(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """The keys of `instance` neither `properties` nor `patternProperties` of `schema` cover."""
    known = set(schema.get("properties", {}))
    patterns = list(schema.get("patternProperties", {}))
    return [k for k in instance if k not in known and not any(_matches(p, k) for p in patterns)]


def label(subject: str, path: Iterable[str | int]) -> str:
    """`label("inputs", ["tags", 0])` → `inputs.tags[0]`."""
    text = subject
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part, ensure_ascii=False)}]"
    return text


def describe(error: ValidationError) -> str:
    """What `error` requires, as a predicate: "must be one of GET, POST"."""
    kind, value = error.validator, cast(Any, error.validator_value)
    simple: dict[str, Callable[[], str]] = {
        "const": lambda: f"must be {_show(value)}",
        "enum": lambda: "must be one of " + ", ".join(_show(v) for v in value),
        "type": lambda: "must be " + " or ".join(_TYPE_NAMES.get(t, t) for t in _listed(value)),
        "minLength": lambda: f"must be at least {value} characters long",
        "maxLength": lambda: f"must be at most {value} characters long",
        "minimum": lambda: f"must be >= {value}",
        "maximum": lambda: f"must be <= {value}",
        "exclusiveMinimum": lambda: f"must be > {value}",
        "exclusiveMaximum": lambda: f"must be < {value}",
        "minItems": lambda: f"must have at least {value} item{'s' if value != 1 else ''}",
        "maxItems": lambda: f"must have at most {value} item{'s' if value != 1 else ''}",
        "uniqueItems": lambda: "must not contain duplicate items",
        "format": lambda: f"must be a valid {value}",
        "pattern": lambda: error.message if error.message.startswith(_BOUNDED) else _pattern_message(str(value)),
        "oneOf": lambda: "must match exactly one of the allowed shapes",
        "anyOf": lambda: "must match one of the allowed shapes",
    }
    build = simple.get(str(kind))
    return build() if build else error.message


def _pattern_message(pattern: str) -> str:
    if pattern == IDENTIFIER_PATTERN:
        return "must be an identifier: letters, digits and @ _ : - only"
    return f"must match the pattern {pattern}"


def _listed(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
