"""Which callback URLs the service may POST to (SSRF safety): http(s) only, and a host whose every address is a
public one. Checked at submit and again at each delivery, which then connects to the very address checked here
(a DNS answer that changes between the check and the connection cannot send it elsewhere)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from runtime.domain.callbacks import MAX_CALLBACK_URL_CHARS

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses it resolves to (text). Injectable: tests pretend DNS answers change.
Resolver = Callable[[str, int], Sequence[str]]

_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # CGNAT: not global, yet not "private" in Python
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_DEFAULT_PORTS = {"http": 80, "https": 443}


class UnsafeCallbackUrl(ValueError):
    """The URL may not be called; the message says why in one lowercase sentence (no 'callbackUrl: ' prefix)."""


@dataclass(frozen=True)
class CallbackTarget:
    """A checked URL: where to connect (`address`, checked) and what to ask for (`host` for Host and TLS)."""

    scheme: str
    host: str
    port: int
    path: str  # path and query, at least "/"
    address: str


def system_resolver(host: str, port: int) -> Sequence[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]).split("%", 1)[0] for info in infos]


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (IPv4-mapped, 6to4, Teredo client, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_internal(address: IpAddress) -> bool:
    """Loopback, private, link-local (169.254/16), CGNAT (100.64/10), multicast, reserved, unspecified, anything
    not globally routable, or an IPv6 form of such an IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None and is_internal(inner):
            return True
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address in _SHARED_ADDRESS_SPACE
        or not address.is_global
    )


def is_loopback(address: IpAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def syntax_problem(url: str) -> str | None:
    """Why `url` cannot be a callback URL without looking anything up, or None."""
    if len(url) > MAX_CALLBACK_URL_CHARS:
        return f"must be at most {MAX_CALLBACK_URL_CHARS} characters, got {len(url)}"
    shown = url if len(url) <= 80 else url[:77] + "..."
    if not url.isascii() or any(char.isspace() or ord(char) < 32 for char in url):
        return f"must be an ascii url without spaces, got {shown!r}"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return f"not a valid url: {shown!r}"
    if parts.scheme not in _DEFAULT_PORTS:
        return f"must be an http or https url, got {shown!r}"
    if not parts.hostname:
        return f"has no host: {shown!r}"
    if parts.username is not None or parts.password is not None:
        return f"must not carry credentials: {parts.scheme}://...@{parts.hostname}"
    if port == 0:
        return f"has no valid port: {shown!r}"
    return None


class CallbackUrlPolicy:
    """`allow_loopback_http`: http URLs whose host is loopback pass (the local all-in-one and tests listen on
    127.0.0.1); the settings refuse it outside the local environment, and https to loopback never passes."""

    def __init__(self, *, allow_loopback_http: bool, resolver: Resolver = system_resolver) -> None:
        self._allow_loopback_http = allow_loopback_http
        self._resolver = resolver

    def check(self, url: str) -> CallbackTarget:
        """Resolves the host and returns where to connect; UnsafeCallbackUrl when any address is internal."""
        problem = syntax_problem(url)
        if problem is not None:
            raise UnsafeCallbackUrl(problem)
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
        try:
            literal: IpAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses: list[IpAddress] = [literal]
        else:
            try:
                found = self._resolver(host, port)
            except (OSError, UnicodeError):
                raise UnsafeCallbackUrl(f"host {host!r} does not resolve") from None
            addresses = []
            for text in found:
                try:
                    addresses.append(ipaddress.ip_address(text))
                except ValueError:
                    raise UnsafeCallbackUrl(f"host {host!r} resolves to a malformed address") from None
            if not addresses:
                raise UnsafeCallbackUrl(f"host {host!r} does not resolve")
        # Every address must pass: a name answering with one public and one internal address is refused.
        for address in addresses:
            if self._allow_loopback_http and parts.scheme == "http" and is_loopback(address):
                continue
            if is_internal(address):
                shown = host if literal is not None else f"{host} ({address})"
                raise UnsafeCallbackUrl(f"{shown} is an internal address; callbacks go to public hosts only")
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return CallbackTarget(scheme=parts.scheme, host=host, port=port, path=path, address=str(addresses[0]))
