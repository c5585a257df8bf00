"""Answers constrained by an `outputSchema`: the instruction that asks for JSON, reading the answer
(a JSON object, optionally in a ```json fence), validating it with the engine's JSON-Schema dialect,
and the one repair turn that sends the problems back to the model. No I/O."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import SchemaError, UnknownType

from libs.core.errors import ActionError
from libs.core.schema_dialect import issues, make_validator
from services.executor.ai.models import Message

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


class SchemaFailure(ActionError):
    code = "ai_output_schema"

    def __init__(self, problem: str, output: Any = None) -> None:
        super().__init__(f"the model's answer does not satisfy config.outputSchema: {problem}",
                         retryable=False, output=output)


@dataclass(frozen=True)
class Checked:
    value: Any
    problem: str | None
    """None when `value` satisfies the schema."""


def instruction(schema: Mapping[str, Any]) -> str:
    return ("Answer with one JSON object, and nothing else, that satisfies this JSON Schema:\n"
            + json.dumps(schema, separators=(",", ":")))


def system_prompt(system: str, schema: Mapping[str, Any] | None) -> str:
    if schema is None:
        return system
    return f"{system}\n\n{instruction(schema)}" if system else instruction(schema)


def check(schema: Mapping[str, Any], text: str | None) -> Checked:
    """The answer parsed and validated; `problem` names the first issues."""
    try:
        value = json.loads(_unfenced(text or ""))
    except json.JSONDecodeError as exc:
        return Checked(None, f"the answer is not JSON ({exc.msg} at character {exc.pos})")
    try:
        validator = make_validator(schema)
        type(validator).check_schema(dict(schema))
        found = issues(validator, value, "", "response")
    except (SchemaError, UnknownType) as exc:
        raise ActionError(f"config.outputSchema is not a valid JSON Schema: {_first_line(exc)}") from None
    if not found:
        return Checked(value, None)
    return Checked(value, "; ".join(f"{i.pointer or '/'}: {i.message}" for i in found[:5]))


def repair_turns(answer: str | None, problem: str) -> tuple[Message, Message]:
    """The model's answer and the user turn asking it, once, to correct it."""
    return (Message("assistant", answer or ""),
            Message("user", f"Your answer does not satisfy the JSON Schema: {problem}. "
                            "Answer again with only the corrected JSON object."))


def _unfenced(text: str) -> str:
    match = _FENCE.match(text)
    return match.group(1) if match else text.strip()


def _first_line(exc: Exception) -> str:
    return str(getattr(exc, "message", None) or exc).splitlines()[0]
