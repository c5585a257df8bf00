"""The egress rules (libs/core/egress.py): which URLs may be saved and which addresses reached."""

from __future__ import annotations

import pytest

from libs.core.egress import EgressPolicy, EgressRefused, Rules, url_problem
from libs.core.errors import ActionError

DEFAULT = EgressPolicy.of()


@pytest.mark.parametrize("host, address", [
    ("169.254.169.254", None), ("metadata.google.internal", None), ("example.com", "169.254.169.254"),
    ("example.com", "::ffff:169.254.169.254"), ("0.0.0.0", None), ("example.com", "0.0.0.0"),
    ("example.com", "::"), ("example.com", "fe80::1"), ("example.com", "fd00:ec2::254"),
    ("example.com", "100.100.100.200"), ("METADATA.google.internal.", None), ("[fe80::1%eth0]", None),
])
def test_link_local_metadata_and_unspecified_are_refused_by_default(host: str, address: str | None) -> None:
    reason = DEFAULT.refusal(host, address)
    assert reason is not None and "STEPLINE_EGRESS_ALLOW" in reason


@pytest.mark.parametrize("host, address", [
    ("127.0.0.1", None), ("localhost", "127.0.0.1"), ("::1", None), ("10.1.2.3", None), ("192.168.1.5", None),
    ("172.16.0.1", None), ("example.com", "93.184.215.14"), ("example.com", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"),
])
def test_loopback_private_and_public_addresses_are_allowed_by_default(host: str, address: str | None) -> None:
    assert DEFAULT.refusal(host, address) is None


def test_deny_adds_cidrs_and_host_names() -> None:
    policy = EgressPolicy.of("10.0.0.0/8, internal.example.com, .corp.example", "")
    assert policy.refusal("x", "10.9.9.9") is not None
    assert policy.refusal("internal.example.com", "93.184.215.14") is not None
    assert policy.refusal("db.corp.example", "93.184.215.14") is not None
    assert policy.refusal("corp.example", "93.184.215.14") is not None
    assert policy.refusal("example.com", "11.0.0.1") is None


def test_allow_wins_over_deny_and_the_defaults() -> None:
    strict = EgressPolicy.of("0.0.0.0/0, ::/0", "api.github.com, 10.1.0.0/16, 169.254.10.0/24")
    assert strict.refusal("api.github.com", "140.82.112.6") is None, "allowed by name"
    assert strict.refusal("svc", "10.1.4.4") is None, "allowed by CIDR"
    assert strict.refusal("svc", "169.254.10.7") is None, "a link-local range re-opened on purpose"
    assert strict.refusal("svc", "169.254.169.254") is not None
    assert strict.refusal("example.com", "93.184.215.14") is not None
    assert strict.refusal("example.com", "2606:2800::1") is not None


def test_a_bad_rule_is_named() -> None:
    with pytest.raises(ValueError, match="STEPLINE_EGRESS_DENY: 'not a host!' is neither"):
        Rules.parse("10.0.0.0/8, not a host!", setting="STEPLINE_EGRESS_DENY")


def test_a_refusal_is_a_non_retryable_action_error() -> None:
    refused = EgressRefused("no")
    assert isinstance(refused, ActionError) and not refused.retryable


@pytest.mark.parametrize("url", [
    "http://example.com", "https://10.0.0.1:8443/a?b=c", "{{ .inputs.url }}", "{{ .secrets.base }}/x",
    "https://{{ .inputs.host }}/hook", "ht{{ .inputs.rest }}", "http://127.0.0.1:8080/x/{{ .run.id }}",
])
def test_http_urls_and_templates_that_may_become_one_are_accepted(url: str) -> None:
    assert url_problem(url) is None


@pytest.mark.parametrize("url, says", [
    ("file:///etc/passwd", "'file'"), ("gopher://x", "'gopher'"), ("ftp://{{ .inputs.host }}/x", "'ftp'"),
    ("localhost:8080/x", "http:// or https://"), ("http://", "must name a host"),
    ("data{{ .x }}", "http:// or https://"), ("example.com/path", "missing"),
])
def test_other_schemes_are_refused(url: str, says: str) -> None:
    problem = url_problem(url)
    assert problem is not None and says in problem
