"""The port through which actions read secrets by name (the vault that decrypts them lives at the
edges). `NoSecrets` is the reader of an installation without a secrets key."""

from __future__ import annotations

from typing import Protocol

SECRET_NAME_PATTERN = r"^[A-Za-z0-9@_:.-]+$"
MAX_SECRET_NAME_LENGTH = 60


class SecretReader(Protocol):
    async def reveal(self, name: str) -> str | None:
        """The plaintext of secret `name`, or None if there is no such secret."""
        ...


class NoSecrets:
    async def reveal(self, name: str) -> str | None:
        return None
