"""Port's node-permission policy `{combinator, rules}` (the body of
`/v1/workflows/{wf}/nodes/{node}/permissions`, kept as a SELF_SERVE_TRIGGER's `config.permissions.policy`):
its JSON Schema and its evaluation. Pure.

A rule reads a property of one of three contexts: `user` (the caller: `$identifier`, `email`, `role`),
`userTeams` (Stepline has no teams: always empty) or `form` (the run's validated inputs), and compares
it with `operator` to `value`, a literal or another `{context, property}`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Final

from jsonschema.protocols import Validator

from libs.core.errors import Issue
from libs.core.schema_dialect import issues, make_validator

CONTEXTS: Final = ("userTeams", "user", "form")
_REF: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["context", "property"],
    "properties": {"context": {"enum": list(CONTEXTS)}, "property": {"type": "string", "minLength": 1}},
    "additionalProperties": False,
}
_SCALAR: Final[dict[str, Any]] = {"type": ["number", "string", "boolean"]}
_LIST: Final[dict[str, Any]] = {"type": "array", "items": _SCALAR}


def _rule(operators: list[str], value: dict[str, Any] | None) -> dict[str, Any]:
    rule: dict[str, Any] = {"type": "object", "required": ["property", "operator"],
                            "properties": {"property": _REF, "operator": {"enum": operators}}}
    if value is not None:
        rule["required"] = ["property", "operator", "value"]
        rule["properties"]["value"] = value
    return rule


POLICY: Final[dict[str, Any]] = {
    "type": "object",
    "description": "Port's node-permission policy: callers matching it may start the run (after the "
                   "static `users`/`roles`, which are checked first).",
    "required": ["combinator", "rules"],
    "properties": {
        "combinator": {"enum": ["and", "or"]},
        "rules": {"type": "array", "items": {"anyOf": [
            _rule(["empty", "notEmpty"], None),
            _rule(["=", "!="], {"anyOf": [_REF, _SCALAR, _LIST]}),
            _rule([">", "<", ">=", "<="], {"anyOf": [_REF, _SCALAR]}),
            _rule(["in", "notIn"], {"anyOf": [_REF, _LIST]}),
        ]}},
    },
    "additionalProperties": False,
}


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _ordered(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(left: Any, right: Any) -> bool:
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
        return (numbers or (isinstance(left, str) and isinstance(right, str))) and test(left, right)
    return compare


def _member(left: Any, right: Any) -> bool:
    """`in`: the value (or, for a list such as `userTeams`, any of its items) is in `right`."""
    if not isinstance(right, list):
        return False
    return any(item in right for item in left) if isinstance(left, list) else left in right


_OPERATORS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "empty": lambda left, _: _empty(left),
    "notEmpty": lambda left, _: not _empty(left),
    "=": lambda left, right: left == right,
    "!=": lambda left, right: left != right,
    ">": _ordered(lambda a, b: a > b),
    "<": _ordered(lambda a, b: a < b),
    ">=": _ordered(lambda a, b: a >= b),
    "<=": _ordered(lambda a, b: a <= b),
    "in": _member,
    "notIn": lambda left, right: isinstance(right, list) and not _member(left, right),
}


def _read(contexts: Mapping[str, Any], ref: Any) -> Any:
    if not isinstance(ref, Mapping):
        return None
    scope = contexts.get(str(ref.get("context")))
    if isinstance(scope, list):  # userTeams: the property of every team
        return [t.get(ref.get("property")) for t in scope if isinstance(t, Mapping)]
    return scope.get(str(ref.get("property"))) if isinstance(scope, Mapping) else None


def _holds(rule: Any, contexts: Mapping[str, Any]) -> bool:
    if not isinstance(rule, Mapping) or rule.get("operator") not in _OPERATORS:
        return False
    value = rule.get("value")
    right = _read(contexts, value) if isinstance(value, Mapping) else value
    return _OPERATORS[str(rule["operator"])](_read(contexts, rule.get("property")), right)


def matches(policy: Mapping[str, Any], contexts: Mapping[str, Any]) -> bool:
    """Whether `contexts` (`{user: {...}, userTeams: [...], form: {...}}`) satisfy `policy`. `and`
    over no rules holds, `or` over none does not."""
    rules = policy.get("rules")
    results = [_holds(rule, contexts) for rule in rules] if isinstance(rules, list) else []
    return any(results) if policy.get("combinator") == "or" else bool(rules is not None) and all(results)


def policy_issues(body: Any) -> list[Issue]:
    """What is wrong with a policy sent on its own (pointers from its root, e.g. `/rules/0/operator`)."""
    return issues(_validator(), body, "", "policy")


@lru_cache(maxsize=1)
def _validator() -> Validator:
    return make_validator({"$schema": "https://json-schema.org/draft/2020-12/schema", **POLICY})
