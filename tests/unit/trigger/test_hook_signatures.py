"""The webhook signature: `sha256=` + hex HMAC-SHA256 of the raw body, keyed by the secret's value."""

from __future__ import annotations

import hashlib
import hmac

from services.trigger.signatures import sign, signature_matches


def test_sign_is_hex_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"action":"published"}'
    assert sign("key", body) == "sha256=" + hmac.new(b"key", body, hashlib.sha256).hexdigest()


def test_matching() -> None:
    body = b"{}"
    good = sign("key", body)
    assert signature_matches("key", body, good)
    assert signature_matches("key", body, " " + good.upper().replace("SHA256=", "sha256=") + " ")
    assert not signature_matches("key", body, None)
    assert not signature_matches("key", body, "")
    assert not signature_matches("other", body, good)
    assert not signature_matches("key", b"{ }", good)
    assert not signature_matches("key", body, good[7:])
    assert not signature_matches("key", body, good + "ü")
