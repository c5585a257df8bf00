"""Identifiers of workflows, nodes and options: Port's pattern and length."""

from __future__ import annotations

MAX_IDENTIFIER_LENGTH = 60
IDENTIFIER_PATTERN = r"^[\p{L}0-9@_:-]+$"


def is_valid_identifier(value: str) -> bool:
    """`^[\\p{L}0-9@_:-]+$`, at most 60 characters (`str.isalpha` is exactly Unicode category L*)."""
    if not value or len(value) > MAX_IDENTIFIER_LENGTH:
        return False
    return all(c.isalpha() or c in "0123456789@_:-" for c in value)
