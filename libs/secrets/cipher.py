"""AES-256-GCM for secret values. The key is 32 random bytes, written as base64 (`STEPLINE_SECRETS_KEY`).

Each value is sealed with a fresh 96-bit nonce and the secret's name as associated data, so a
ciphertext copied onto another name does not decrypt. `Sealed` is what the store keeps (base64
nonce and ciphertext); nothing here does I/O.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from libs.core.errors import SecretError

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_HINT = "STEPLINE_SECRETS_KEY must be the base64 encoding of 32 random bytes (e.g. `openssl rand -base64 32`)"


class SecretsKeyError(ValueError):
    """The configured secrets key is malformed (raised at start-up, never retryable)."""


class DecryptionError(SecretError):
    """A sealed value does not open with this key and name: another key, or tampered data."""


@dataclass(frozen=True)
class Sealed:
    nonce: str
    ciphertext: str

    def as_dict(self) -> dict[str, str]:
        return {"nonce": self.nonce, "ciphertext": self.ciphertext}


def generate_key() -> str:
    """A new random key, base64."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def parse_key(text: str) -> bytes:
    """The 32 key bytes of a base64 key; `SecretsKeyError` (which never quotes the key) otherwise."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SecretsKeyError(f"{KEY_HINT}; the value given is not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise SecretsKeyError(f"{KEY_HINT}; the value given decodes to {len(raw)} bytes")
    return raw


class Cipher:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise SecretsKeyError(f"the secrets key must be {KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)

    @classmethod
    def from_text(cls, text: str) -> Cipher:
        return cls(parse_key(text))

    def encrypt(self, plaintext: str, *, name: str) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), name.encode("utf-8"))
        return Sealed(_b64(nonce), _b64(sealed))

    def decrypt(self, sealed: Sealed, *, name: str) -> str:
        try:
            nonce = base64.b64decode(sealed.nonce, validate=True)
            data = base64.b64decode(sealed.ciphertext, validate=True)
            return self._aead.decrypt(nonce, data, name.encode("utf-8")).decode("utf-8")
        except (InvalidTag, binascii.Error, ValueError):
            raise DecryptionError(f"secret {name!r} cannot be decrypted with the configured secrets key "
                                  "(another key, or the stored value was altered)") from None


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
