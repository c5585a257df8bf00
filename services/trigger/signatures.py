"""Signed webhook deliveries: `X-Stepline-Signature: sha256=<hex HMAC-SHA256 of the raw body>`, keyed
by the value of the secret a WEBHOOK_TRIGGER names. Comparison is constant-time."""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="


def sign(secret: str, body: bytes) -> str:
    """The header value a sender puts on `body`."""
    return PREFIX + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signature_matches(secret: str, body: bytes, header: str | None) -> bool:
    if header is None:
        return False
    given = header.strip().lower().encode("utf-8", errors="replace")
    return hmac.compare_digest(sign(secret, body).encode("ascii"), given)
