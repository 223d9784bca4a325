"""Webhook URLs must never reach the gateway's own network (SSRF).

Minimal version written for webhook delivery (branch whdeliver) with the agreed interface; the endpoints API
branch owns the full one (the lead keeps that version at merge)."""
import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
             ipaddress.ip_address("100.100.100.200")}


class UnsafeUrl(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def address_allowed(address: Address, *, allow_loopback: bool) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in _METADATA:
        return False
    if address.is_loopback:
        return allow_loopback
    return not (address.is_private or address.is_link_local or address.is_multicast or address.is_reserved
                or address.is_unspecified or not address.is_global)


def loopback_allowed(*, livemode: bool) -> bool:
    return not livemode and bool(settings.GATEWAY_WEBHOOK_ALLOW_LOOPBACK)


def _odd_ipv4(host: str) -> Address | None:
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def host_addresses(host: str) -> list[Address]:
    host = host.strip("[]")
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    odd = _odd_ipv4(host)
    if odd is not None:
        return [odd]
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrl(f"The host {host!r} cannot be resolved.") from exc
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeUrl(f"The host {host!r} cannot be resolved.")
    return addresses


def url_validate(url: str, *, livemode: bool) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl("The URL must be http(s) with a host.")
    if livemode and parts.scheme != "https":
        raise UnsafeUrl("Live-mode webhook URLs must use https.")
    allow = loopback_allowed(livemode=livemode)
    for address in host_addresses(parts.hostname):
        if not address_allowed(address, allow_loopback=allow):
            raise UnsafeUrl(f"The URL's host resolves to a forbidden address ({address}).")
    return url
