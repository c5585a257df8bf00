"""Run inputs from the command line: `--input key=value` (repeatable) and `--inputs-json JSON|@file`."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from stepline.cli.errors import CliError
from stepline.cli.files import parse_json, read_text


def parse_value(text: str) -> Any:
    """JSON when `text` parses as JSON (`42`, `true`, `{"a": 1}`, `"quoted"`), else the text itself."""
    try:
        value = json.loads(text, parse_constant=_not_json)
    except ValueError:
        return text
    return text if isinstance(value, float) and not math.isfinite(value) else value


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_pair(item: str) -> tuple[str, Any]:
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise CliError(f"--input {item!r}: expected KEY=VALUE (for example --input version=1.4.2)")
    return key, parse_value(value)


def inputs_json(argument: str) -> dict[str, Any]:
    """`--inputs-json '{"a": 1}'` or `--inputs-json @inputs.json`: must be a JSON object."""
    if argument.startswith("@"):
        source = argument[1:]
        value = parse_json(read_text(source), source)
    else:
        source = "--inputs-json"
        value = parse_json(argument, source)
    if not isinstance(value, dict):
        raise CliError(f"{source}: run inputs must be a JSON object, got {type(value).__name__}")
    return value


def collect_inputs(pairs: Sequence[str], json_argument: str | None) -> dict[str, Any]:
    """`--inputs-json` first, then each `--input` on top (later keys win)."""
    inputs = inputs_json(json_argument) if json_argument is not None else {}
    for item in pairs:
        key, value = parse_pair(item)
        inputs[key] = value
    return inputs
