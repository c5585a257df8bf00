"""Reading workflow definition files and validating them locally (no server needed)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from libs.core.definition import Workflow
from libs.core.errors import DefinitionError
from libs.core.validation import parse_workflow
from stepline.cli.errors import CliError


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def read_text(path: str) -> str:
    """The file's text, or a `CliError` naming the file and what is wrong with it."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{path}: is a directory, not a JSON file") from None
    except UnicodeDecodeError:
        raise CliError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise CliError(f"{path}: cannot read: {exc.strerror or exc}") from None


def parse_json(text: str, source: str) -> Any:
    """Strict JSON (no NaN/Infinity); errors name `source` with line and column."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise CliError(f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:
        raise CliError(f"{source}: invalid JSON: {exc}") from None


def load_json(path: str) -> Any:
    return parse_json(read_text(path), path)


def issue_lines(source: str, issues: Iterable[tuple[str, str]]) -> list[str]:
    """`FILE#<pointer>: <message>`, one per issue."""
    return [f"{source}#{pointer}: {message}" for pointer, message in issues]


def definition_error(source: str, issues: list[tuple[str, str]]) -> CliError:
    count = f"{len(issues)} problem{'s' if len(issues) != 1 else ''}"
    return CliError(f"{source}: invalid workflow definition ({count})", lines=issue_lines(source, issues))


def validate(raw: Any, source: str) -> Workflow:
    """`parse_workflow`, with every issue reported as `FILE#<pointer>: <message>`."""
    try:
        return parse_workflow(raw)
    except DefinitionError as exc:
        issues = [(i.pointer, i.message) for i in exc.issues] or [("", exc.message)]
        raise definition_error(source, issues) from None


def load_workflow(path: str) -> tuple[Any, Workflow]:
    """The raw JSON of `path` and the validated workflow it defines."""
    raw = load_json(path)
    return raw, validate(raw, path)
