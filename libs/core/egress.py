"""Where a workflow may send requests (pure): the URL rules checked at save time and the address
rules the guarded HTTP transport (`libs/runtime/egress.py`) applies to every connection it opens.

- Only `http` and `https` URLs with a host. A URL that starts with a template is checked at run time.
- Refused by default: link-local (169.254.0.0/16, fe80::/10, which hold the cloud metadata
  endpoints), other metadata addresses, unspecified and "this network" addresses, and the metadata
  host names. Loopback and private ranges stay allowed: a self-hosted engine calls its neighbours.
- `STEPLINE_EGRESS_DENY` adds CIDRs and host names to the refused set; `STEPLINE_EGRESS_ALLOW` lists
  CIDRs and host names allowed even so (it wins over both). A strict allow-list is therefore
  `DENY=0.0.0.0/0,::/0` with `ALLOW=` the destinations. A host name rule `example.com` matches that
  host, `.example.com` (or `*.example.com`) its subdomains.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from libs.core.errors import ActionError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_DENIED_NETWORKS: tuple[str, ...] = (
    "0.0.0.0/8",          # unspecified / "this network"
    "169.254.0.0/16",     # IPv4 link-local, AWS/GCP/Azure metadata 169.254.169.254
    "100.100.100.200/32",  # Alibaba Cloud metadata
    "::/128",             # IPv6 unspecified
    "fe80::/10",          # IPv6 link-local
    "fd00:ec2::254/128",  # AWS metadata over IPv6
)
DEFAULT_DENIED_HOSTS: tuple[str, ...] = ("metadata.google.internal", "metadata.goog", "metadata")
SCHEMES = ("http", "https")


class EgressRefused(ActionError):
    """A request the egress rules do not allow. Not retryable: the same destination stays refused."""

    code = "egress_refused"

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


@dataclass(frozen=True)
class Rules:
    networks: tuple[IPNetwork, ...] = ()
    hosts: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str | list[str] | tuple[str, ...], *, setting: str) -> Rules:
        """`10.0.0.0/8, api.example.com, .internal` → rules; ValueError naming the bad entry."""
        items = text.split(",") if isinstance(text, str) else list(text)
        networks: list[IPNetwork] = []
        hosts: list[str] = []
        for item in (i.strip().lower() for i in items):
            if not item:
                continue
            network = _network(item)
            if network is not None:
                networks.append(network)
            elif _is_host_rule(item):
                hosts.append(item.removeprefix("*"))
            else:
                raise ValueError(f"{setting}: {item!r} is neither a CIDR, an address nor a host name")
        return cls(tuple(networks), tuple(hosts))

    def matches(self, host: str, address: IPAddress | None) -> bool:
        name = normal_host(host)
        if any(_host_matches(rule, name) for rule in self.hosts):
            return True
        return address is not None and any(address.version == n.version and address in n for n in self.networks)


DEFAULT_DENIED = Rules(tuple(ipaddress.ip_network(n) for n in DEFAULT_DENIED_NETWORKS), DEFAULT_DENIED_HOSTS)


@dataclass(frozen=True)
class EgressPolicy:
    deny: Rules = DEFAULT_DENIED
    allow: Rules = Rules()

    @classmethod
    def of(cls, deny: str | list[str] = "", allow: str | list[str] = "") -> EgressPolicy:
        extra = Rules.parse(deny, setting="STEPLINE_EGRESS_DENY")
        denied = Rules(DEFAULT_DENIED.networks + extra.networks, DEFAULT_DENIED.hosts + extra.hosts)
        return cls(denied, Rules.parse(allow, setting="STEPLINE_EGRESS_ALLOW"))

    def refusal(self, host: str, address: str | None = None) -> str | None:
        """Why a connection to `address` (resolved from `host`) is refused, or None when allowed."""
        ip = _address(address if address is not None else host)
        if self.allow.matches(host, ip):
            return None
        if self.deny.matches(host, ip):
            where = normal_host(host) if ip is None or normal_host(host) == str(ip) else f"{normal_host(host)} ({ip})"
            return f"the egress rules refuse {where} (link-local, metadata and unspecified addresses and " \
                   "STEPLINE_EGRESS_DENY are refused unless STEPLINE_EGRESS_ALLOW lists them)"
        return None


def url_problem(url: object) -> str | None:
    """Why `url` cannot be requested (not http(s), no host), or None. For a URL still holding a
    `{{ template }}`, only the literal part before the first template is checked."""
    if not isinstance(url, str):
        return "must be a URL"
    literal = url.split("{{", 1)[0]
    if literal != url and "://" not in literal:
        return None if literal == "" or _scheme_prefix_ok(literal) else "must be an http:// or https:// URL"
    try:
        parts = urlsplit(literal.strip())
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() not in SCHEMES:
        return f"must be an http:// or https:// URL (scheme {parts.scheme or 'missing'!r} is not allowed)"
    if literal == url and not parts.hostname:
        return "must name a host"
    return None


def normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _scheme_prefix_ok(literal: str) -> bool:
    """A literal part that could still become `http://` or `https://` once templates render."""
    text = literal.lower()
    return any(s.startswith(text) for s in ("http://", "https://"))


def _network(item: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(item.strip("[]"), strict=False)
    except ValueError:
        return None


def _address(text: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(normal_host(text).split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _is_host_rule(item: str) -> bool:
    name = item.removeprefix("*")
    return bool(name) and all(c.isalnum() or c in ".-_" for c in name) and name != "."


def _host_matches(rule: str, host: str) -> bool:
    if rule.startswith("."):
        return host.endswith(rule) or host == rule[1:]
    return host == rule
