"""The webhook signature schemes of libs/core/webhook_signatures.py: each against a hand-computed
signature, refusals (missing, wrong, stale) and the idempotency key of an accepted delivery."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from libs.core.webhook_signatures import (
    SCHEMES,
    Signing,
    sign,
    signing_of,
    verify,
)

NOW = 1_764_000_000
BODY = b'{"action":"published"}'


def mac(key: str, message: bytes) -> str:
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def check(scheme: str, headers: dict[str, str], *, body: bytes = BODY, now: float = NOW, tolerance: int = 300,
          key: str = "key") -> tuple[bool, str, str | None]:
    verdict = verify(Signing(scheme, "s", tolerance), key, body, lower(headers), now)
    return verdict.accepted, verdict.reason, verdict.delivery


def test_legacy_sign_is_hex_hmac_sha256_of_the_raw_body() -> None:
    assert sign("key", BODY) == "sha256=" + mac("key", BODY)


@pytest.mark.parametrize(("scheme", "headers", "delivery"), [
    ("stepline", {"X-Stepline-Signature": f"t={NOW},v1={mac('key', f'{NOW}.'.encode() + BODY)}"},
     f"stepline:{mac('key', f'{NOW}.'.encode() + BODY)}"),
    ("github", {"X-Hub-Signature-256": f"sha256={mac('key', BODY)}", "X-GitHub-Delivery": "72d3162e"},
     "github:72d3162e"),
    ("slack", {"X-Slack-Signature": f"v0={mac('key', f'v0:{NOW}:'.encode() + BODY)}",
               "X-Slack-Request-Timestamp": str(NOW)}, f"slack:v0={mac('key', f'v0:{NOW}:'.encode() + BODY)}"),
    ("hmac-sha256", {"X-Stepline-Signature": f"sha256={mac('key', BODY)}", "X-Stepline-Delivery": "d-1"},
     "delivery:d-1"),
    ("hmac-sha256", {"X-Stepline-Signature": f" SHA256={mac('key', BODY).upper()} "}, None),
])
def test_each_scheme_accepts_its_documented_signature(scheme: str, headers: dict[str, str],
                                                      delivery: str | None) -> None:
    assert check(scheme, headers) == (True, "signed", delivery)


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_what_each_scheme_signs_verifies_and_nothing_else_does(scheme: str) -> None:
    headers = SCHEMES[scheme].sign("key", BODY, NOW, delivery="d-9")
    assert check(scheme, headers)[0]
    assert not check(scheme, headers, key="other")[0]
    assert not check(scheme, headers, body=BODY + b" ")[0]
    assert not check(scheme, {})[0]
    for name in headers:
        assert not check(scheme, {k: v for k, v in headers.items() if k != name})[0] or name.endswith("Delivery")


@pytest.mark.parametrize("scheme", ["stepline", "slack"])
def test_timestamped_schemes_refuse_outside_the_tolerance(scheme: str) -> None:
    headers = SCHEMES[scheme].sign("key", BODY, NOW)
    assert check(scheme, headers, now=NOW + 300)[0] and check(scheme, headers, now=NOW - 300)[0]
    late, reason, _ = check(scheme, headers, now=NOW + 301)
    early, _, _ = check(scheme, headers, now=NOW - 301)
    assert not late and not early and "stale" in reason
    assert check(scheme, headers, now=NOW + 3000, tolerance=3600)[0]


def test_stepline_accepts_any_matching_v1_while_a_secret_rotates() -> None:
    good = mac("key", f"{NOW}.".encode() + BODY)
    header = f"t={NOW},v1={mac('old', f'{NOW}.'.encode() + BODY)},v1={good}"
    assert check("stepline", {"X-Stepline-Signature": header}) == (True, "signed", f"stepline:{good}")


@pytest.mark.parametrize("header", [
    "garbage", f"v1={'0' * 64}", f"t=abc,v1={'0' * 64}", f"t={NOW},t={NOW},v1={'0' * 64}",
    f"t={NOW},v1={'0' * 64}", f"t={NOW + 1},v1={mac('key', f'{NOW}.'.encode() + BODY)}",
    f"sha256={mac('key', BODY)}",
])
def test_stepline_refuses_malformed_or_wrong_headers(header: str) -> None:
    accepted, reason, _ = check("stepline", {"X-Stepline-Signature": header})
    assert not accepted and "key" not in reason


def test_github_requires_a_delivery_id_to_deduplicate() -> None:
    signature = {"X-Hub-Signature-256": f"sha256={mac('key', BODY)}"}
    accepted, reason, _ = check("github", signature)
    assert not accepted and "X-GitHub-Delivery" in reason
    assert not check("github", {**signature, "X-GitHub-Delivery": "x" * 201})[0]


def test_reasons_never_contain_the_secret_or_the_expected_signature() -> None:
    for scheme in SCHEMES:
        headers = SCHEMES[scheme].sign("correct-key", BODY, NOW)
        _, reason, _ = check(scheme, headers, key="s3cr3t-value")
        assert "s3cr3t" not in reason and mac("s3cr3t-value", BODY) not in reason


def test_unknown_scheme_is_refused() -> None:
    assert not check("md5", {"X-Stepline-Signature": sign("key", BODY)})[0]


@pytest.mark.parametrize(("config", "signing"), [
    ({"type": "WEBHOOK_TRIGGER", "secretName": "k"}, Signing("hmac-sha256", "k", 300)),
    ({"type": "WEBHOOK_TRIGGER", "signature": {"scheme": "github", "secretName": "g"}}, Signing("github", "g", 300)),
    ({"type": "WEBHOOK_TRIGGER", "signature": {"scheme": "slack", "secretName": "s", "toleranceSeconds": 60}},
     Signing("slack", "s", 60)),
])
def test_signing_of_a_config_including_the_older_top_level_secret_name(config: dict[str, object],
                                                                      signing: Signing) -> None:
    assert signing_of(config) == signing
