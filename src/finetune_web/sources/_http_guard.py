"""Which URLs may be fetched: http(s) only, and no private or internal addresses.

A crawler that fetches URLs it was given (or redirects it was sent) can be
turned against the machine it runs on and its network: ``http://127.0.0.1``,
``http://169.254.169.254/`` (cloud metadata), ``http://10.0.0.5/admin``.  The
guard resolves every host (``socket.getaddrinfo``) before each request,
redirects included, and refuses the URL when any address is private,
loopback, link-local, reserved, multicast, unspecified or otherwise not
globally reachable, IPv4 and IPv6 alike (IPv4 addresses wrapped in IPv6,
such as ``::ffff:127.0.0.1``, are unwrapped first).  Hosts and networks named
in ``allow_private`` are let through.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence

import attrs
import httpx

from finetune_web.errors import ConfigError
from finetune_web.sources._http_errors import FetchFailure

__all__ = ["AddressGuard", "IPAddress", "Resolver", "is_blocked", "parse_url", "system_resolver"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``(host, port) -> addresses``; the default asks the system (``socket.getaddrinfo``).
Resolver = Callable[[str, int], Sequence[str]]

_SCHEMES = ("http", "https")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def system_resolver(host: str, port: int) -> list[str]:
    """Return the addresses ``host`` resolves to, as the system resolver gives them.

    Raises:
        OSError: the name cannot be resolved.
    """
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in found})


def _embedded(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    inner: list[ipaddress.IPv4Address] = []
    if ip.sixtofour is not None:
        inner.append(ip.sixtofour)
    if ip.teredo is not None:
        inner.extend(ip.teredo)
    if ip in _NAT64:
        inner.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return inner


def is_blocked(ip: IPAddress) -> bool:
    """Say whether an address is private, loopback, link-local, reserved, multicast,
    unspecified or not globally reachable (IPv4 inside IPv6 is checked too)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return is_blocked(ip.ipv4_mapped)
    if any(is_blocked(inner) for inner in _embedded(ip)):
        return True
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or not ip.is_global
    )


def parse_url(raw: object, *, what: str = "URL") -> tuple[str, httpx.URL]:
    """Check a URL and return it without its fragment, as text and as :class:`httpx.URL`.

    Surrounding whitespace and the ``#fragment`` are removed; nothing else changes.

    Args:
        raw: the URL as given.
        what: how messages name it ("URL", "redirect target").

    Raises:
        FetchFailure: ``bad_url`` when it is not a string, not an http(s) URL, or has no host.
    """
    if not isinstance(raw, str):
        raise FetchFailure("bad_url", f"the {what} is a {type(raw).__name__}, not a string")
    text = raw.strip().split("#", 1)[0]
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise FetchFailure("bad_url", f"the {what} is not a valid URL: {exc}") from None
    if url.scheme not in _SCHEMES:
        scheme = url.scheme or "no scheme"
        raise FetchFailure(
            "bad_url",
            f"the {what} uses {scheme}; only http and https URLs are fetched",
            details={"scheme": url.scheme},
        )
    if not url.host:
        raise FetchFailure("bad_url", f"the {what} has no host name")
    return text, url


def _allowances(value: Iterable[str] | str) -> tuple[str, ...]:
    entries = (value,) if isinstance(value, str) else tuple(value)
    for entry in entries:
        if not isinstance(entry, str) or not entry.strip():
            raise ConfigError(
                f"allow_private entries must be host names, addresses or networks such as "
                f"'127.0.0.1', 'intranet.example' or '10.0.0.0/8'; got {entry!r}"
            )
    return tuple(entry.strip().strip("[]").lower() for entry in entries)


@attrs.frozen(kw_only=True)
class AddressGuard:
    """Refuses URLs whose host resolves to a private or internal address.

    Attributes:
        allow: host names, addresses and networks (CIDR) let through anyway.
        resolver: ``(host, port) -> addresses``; the system resolver when ``None``.
    """

    allow: tuple[str, ...] = attrs.field(default=(), converter=_allowances)
    resolver: Resolver | None = attrs.field(default=None, eq=False, repr=False)
    _hosts: frozenset[str] = attrs.field(init=False)
    _networks: tuple[IPNetwork, ...] = attrs.field(init=False)

    @_hosts.default
    def _split_hosts(self) -> frozenset[str]:
        return frozenset(entry for entry in self.allow if _network(entry) is None)

    @_networks.default
    def _split_networks(self) -> tuple[IPNetwork, ...]:
        return tuple(net for net in map(_network, self.allow) if net is not None)

    def _allowed(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self._networks)

    def addresses(self, url: httpx.URL) -> list[IPAddress]:
        """Return the addresses of the URL's host (itself when it is an address).

        Raises:
            FetchFailure: ``connection_error`` when the name does not resolve.
        """
        host = url.host
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        resolve = self.resolver or system_resolver
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            found = list(resolve(host, port))
        except (OSError, UnicodeError) as exc:
            raise FetchFailure(
                "connection_error",
                f"cannot resolve the host name {host!r} ({exc}); check the URL",
                details={"host": host},
            ) from None
        if not found:
            raise FetchFailure("connection_error", f"the host name {host!r} resolves to no address")
        return [ipaddress.ip_address(address) for address in found]

    def check(self, url: httpx.URL) -> None:
        """Refuse a URL whose host is (or resolves to) a blocked address.

        Raises:
            FetchFailure: ``blocked_address`` (or ``connection_error`` when the
                host does not resolve).
        """
        if url.host.lower() in self._hosts:
            return
        blocked = [ip for ip in self.addresses(url) if is_blocked(ip) and not self._allowed(ip)]
        if blocked:
            shown = ", ".join(str(ip) for ip in blocked)
            raise FetchFailure(
                "blocked_address",
                f"the host {url.host!r} is (or resolves to) {shown}, a private, loopback, "
                "link-local or otherwise internal address; fetching it is refused to protect "
                "your network (name the host or network in allow_private=... if this is meant)",
                details={"host": url.host, "addresses": [str(ip) for ip in blocked]},
            )


def _network(entry: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None
