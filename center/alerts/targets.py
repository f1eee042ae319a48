"""Pure: whether an alert URL's addresses may be sent to (public only, unless allowed)."""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Iterable, Sequence

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
SETTING = "UNITEDCRON_ALERT_ALLOWED_NETWORKS"


def parse_networks(text: str) -> tuple[Network, ...]:
    """A comma-separated list of CIDRs (`10.1.2.0/24, fd00::/8`, a bare address is a /32 or
    /128); ValueError names the first that is not one."""
    out: list[Network] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item[:60]!r} is not a network (like 10.0.0.0/8)") from None
    return tuple(out)


def check_networks(text: str) -> str:
    """A setting's validator: the text back if it parses."""
    parse_networks(text)
    return text


def _embedded(ip: Address) -> Address:
    """The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d) or 6to4 address, else `ip`."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour
        if inner is not None:
            return inner
    return ip


def address_kind(ip: Address) -> str | None:
    """What makes `ip` no public address ("loopback", "private", …); None if it is one."""
    inner = _embedded(ip)
    for kind, flag in (
        ("unspecified", inner.is_unspecified),
        ("loopback", inner.is_loopback),
        ("link-local", inner.is_link_local),
        ("multicast", inner.is_multicast),
        ("private", inner.is_private),
    ):
        if flag:
            return kind
    return None if inner.is_global else "non-public"  # reserved, shared (CGNAT), documentation


def _allowed(ip: Address, allowed: Iterable[Network]) -> bool:
    candidates = {ip, _embedded(ip)}
    return any(a in net for net in allowed for a in candidates if a.version == net.version)


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def target_problem(
    url: str, resolved_addrs: Sequence[str], allowed: Sequence[Network]
) -> str | None:
    """Why an alert may not go to `url` whose host resolved to `resolved_addrs` (None: it
    may). A host that is an address is checked as it is; every resolved address must be
    public (not loopback, link-local, private, unspecified, multicast, nor such an address
    inside IPv6) or inside one of the `allowed` networks."""
    host = urllib.parse.urlsplit(url).hostname or ""
    literal = _literal(host)
    verb = "is" if literal is not None else "resolves to"
    for text in [str(literal)] if literal is not None else resolved_addrs:
        ip = _literal(text.split("%", 1)[0])  # a link-local IPv6 address may carry %scope
        if ip is None:
            return f"{host} resolves to {text[:60]!r}, which is not an IP address"
        kind = address_kind(ip)
        if kind is not None and not _allowed(ip, allowed):
            return (
                f"{host} {verb} {ip}, a {kind} address: alerts go to public addresses only, "
                f"unless the operator lists the network in {SETTING}"
            )
    return None


def plain_http_problem(
    url: str, resolved_addrs: Sequence[str], allowed: Sequence[Network]
) -> str | None:
    """Why a chat robot's `url` may not be plain http:// (None: it is https://, or every
    address of its host lies in one of the `allowed` networks, like a test receiver or a
    relay inside the operator's network). The URL carries the robot's credential."""
    if urllib.parse.urlsplit(url).scheme != "http":
        return None
    host = urllib.parse.urlsplit(url).hostname or ""
    literal = _literal(host)
    texts = [str(literal)] if literal is not None else list(resolved_addrs)
    ips = [_literal(t.split("%", 1)[0]) for t in texts]
    if ips and all(ip is not None and _allowed(ip, allowed) for ip in ips):
        return None
    return (
        "must be an https:// URL: it carries the robot's credential "
        f"(http:// only to a network listed in {SETTING})"
    )
