"""Which URLs the gateway may POST webhooks to: never the gateway's own network (SSRF).

A merchant chooses the URL, so a URL is checked before it is stored (`url_validate`) and again by the delivery
engine, address by address, right before it connects (`address_allowed`): a name may resolve elsewhere by then.
Hosts are read the way resolvers and browsers read them, so `2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1` and
`[::ffff:127.0.0.1]` are all 127.0.0.1 here too. Addresses are refused when they are private, loopback, link-local,
multicast, unspecified, reserved, broadcast, for documentation or benchmarks, site-local, a cloud metadata service,
or an IPv6 form that wraps one of those in IPv4 (mapped, compatible, NAT64, 6to4, Teredo).

Loopback (127.0.0.0/8 and ::1) is allowed only for test-mode endpoints where GATEWAY_WEBHOOK_ALLOW_LOOPBACK is set
(developer machines and the test suite), so a developer can receive webhooks on 127.0.0.1:PORT. Imports no app."""
import ipaddress
import re
import socket
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# Checked by hand as well as through ipaddress's flags, whose lists differ between Python versions.
_REFUSED_V4 = tuple(_V4(n) for n in (
    "0.0.0.0/8",          # "this network", unspecified
    "10.0.0.0/8",         # RFC 1918
    "100.64.0.0/10",      # CGNAT (RFC 6598), holds 100.100.100.200 (Alibaba Cloud metadata)
    "127.0.0.0/8",        # loopback
    "169.254.0.0/16",     # link-local, holds 169.254.169.254 (AWS, GCP, Azure, OpenStack metadata)
    "172.16.0.0/12",      # RFC 1918
    "192.0.0.0/24",       # IETF protocol assignments (holds 192.0.0.192, Oracle Cloud metadata)
    "192.0.2.0/24",       # TEST-NET-1 (documentation)
    "192.88.99.0/24",     # 6to4 relay anycast
    "192.168.0.0/16",     # RFC 1918
    "198.18.0.0/15",      # benchmarking
    "198.51.100.0/24",    # TEST-NET-2
    "203.0.113.0/24",     # TEST-NET-3
    "224.0.0.0/4",        # multicast
    "240.0.0.0/4",        # reserved, holds 255.255.255.255 (broadcast)
))
_REFUSED_V6 = tuple(_V6(n) for n in (
    "::/128",             # unspecified
    "::1/128",            # loopback
    "64:ff9b:1::/48",     # local-use NAT64 (RFC 8215)
    "100::/64",           # discard-only
    "2001::/23",          # IETF protocol assignments (Teredo 2001::/32 is judged by its IPv4 before this)
    "2001:db8::/32",      # documentation
    "3fff::/20",          # documentation (RFC 9637)
    "5f00::/16",          # SRv6 SIDs
    "fc00::/7",           # unique local, holds fd00:ec2::254 (AWS metadata over IPv6)
    "fe80::/10",          # link-local
    "fec0::/10",          # site-local (deprecated)
    "ff00::/8",           # multicast
))
_METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "100.100.100.200", "192.0.0.192", "fd00:ec2::254",
))
_LOOPBACK_V4 = _V4("127.0.0.0/8")
_IPV4_COMPATIBLE = _V6("::/96")
_IPV4_TRANSLATED = _V6("::ffff:0:0:0/96")  # SIIT (RFC 2765)
_NAT64 = _V6("64:ff9b::/96")
_SIXTOFOUR = _V6("2002::/16")
_TEREDO = _V6("2001::/32")


class UnsafeUrl(Exception):
    """A URL the gateway refuses to send webhooks to; `message` says which host or address, and why."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def loopback_allowed(*, livemode: bool) -> bool:
    return not livemode and bool(settings.GATEWAY_WEBHOOK_ALLOW_LOOPBACK)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address] | None:
    """The IPv4 addresses an IPv6 address stands for (compatible, SIIT, NAT64, 6to4, Teredo), or None."""
    value = int(address)
    if address in _IPV4_COMPATIBLE or address in _IPV4_TRANSLATED or address in _NAT64:
        return [ipaddress.IPv4Address(value & 0xFFFFFFFF)]
    if address in _SIXTOFOUR:
        return [address.sixtofour]
    if address in _TEREDO:
        server, client = address.teredo
        return [server, client]
    return None


def _refusal(address: IPAddress, *, allow_loopback: bool) -> str | None:
    """Why an address is refused (a few words), or None when it is allowed."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "an IPv6 address with a zone"
        if address.ipv4_mapped is not None:
            reason = _refusal(address.ipv4_mapped, allow_loopback=allow_loopback)
            return f"an IPv4-mapped form of {address.ipv4_mapped}, {reason}" if reason else None
        if address == ipaddress.IPv6Address("::1"):
            return None if allow_loopback else "a loopback address"
        if address.is_unspecified:
            return "the unspecified address"
        if address in _METADATA:
            return "a cloud metadata address"
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            for v4 in embedded:
                reason = _refusal(v4, allow_loopback=False)
                if reason:
                    return f"an IPv6 form of {v4}, {reason}"
            return None
        if any(address in net for net in _REFUSED_V6):
            return _describe(address)
    else:
        if allow_loopback and address in _LOOPBACK_V4:
            return None
        if address in _METADATA:
            return "a cloud metadata address"
        if any(address in net for net in _REFUSED_V4):
            return _describe(address)
    if (address.is_private or address.is_loopback or address.is_link_local or address.is_multicast
            or address.is_unspecified or address.is_reserved or not address.is_global
            or getattr(address, "is_site_local", False)):
        return _describe(address)
    return None


def _describe(address: IPAddress) -> str:
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if getattr(address, "is_site_local", False):
        return "a site-local address"
    if isinstance(address, ipaddress.IPv4Address) and address in _V4("100.64.0.0/10"):
        return "a shared (CGNAT) address"
    if address.is_private:
        return "a private address"
    return "a reserved or special-purpose address"


def address_allowed(address: IPAddress, *, allow_loopback: bool) -> bool:
    """Whether the gateway may connect to this address. `allow_loopback` lets 127.0.0.0/8, ::1 and
    ::ffff:127.x through, and nothing else."""
    return _refusal(address, allow_loopback=allow_loopback) is None


_NUMERIC_LABEL = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)$")


def _parse_ipv4_number(label: str) -> int | None:
    if label[:2] in ("0x", "0X"):
        return int(label[2:] or "0", 16)
    if len(label) > 1 and label.startswith("0"):
        return int(label, 8) if all(c in "01234567" for c in label) else None
    return int(label)


def _parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address of a host written in any notation inet_aton and browsers accept (decimal, hex, octal,
    1 to 4 parts), or None when the host is not numeric. Raises UnsafeUrl for a numeric host that is invalid."""
    labels = host.split(".")
    if labels and labels[-1] == "" and len(labels) > 1:
        labels = labels[:-1]  # one trailing dot, as in a fully qualified name
    if not labels or not _NUMERIC_LABEL.match(labels[-1]):
        return None  # a name (browsers parse a host as IPv4 only when its last label is a number)
    if len(labels) > 4 or not all(_NUMERIC_LABEL.match(label) for label in labels):
        raise UnsafeUrl(f"The host `{host}` is neither a valid IPv4 address nor a domain name.")
    numbers = [_parse_ipv4_number(label) for label in labels]
    if any(n is None for n in numbers):
        raise UnsafeUrl(f"The host `{host}` is neither a valid IPv4 address nor a domain name.")
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        raise UnsafeUrl(f"The host `{host}` is an out-of-range IPv4 address.")
    value = last
    for index, number in enumerate(head):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _literal(host: str) -> IPAddress | None:
    """An IP literal (IPv6 with or without brackets, IPv4 in any notation), or None for a name."""
    if host.startswith("[") or host.endswith("]"):
        if not (host.startswith("[") and host.endswith("]")):
            raise UnsafeUrl(f"The host `{host}` has unbalanced brackets.")
        inner = host[1:-1]
        if "%" in inner:
            raise UnsafeUrl(f"The host `{host}` has an IPv6 zone identifier, which is not allowed.")
        try:
            return ipaddress.IPv6Address(inner)
        except ValueError:
            raise UnsafeUrl(f"The host `{host}` is not a valid IPv6 address.") from None
    if ":" in host:
        if "%" in host:
            raise UnsafeUrl(f"The host `{host}` has an IPv6 zone identifier, which is not allowed.")
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise UnsafeUrl(f"The host `{host}` is not a valid IPv6 address.") from None
    return _parse_ipv4(host)


def _ascii_host(host: str) -> str:
    if host.isascii():
        return host.lower()
    try:  # IDNA maps e.g. fullwidth digits to ASCII ones, as resolvers and browsers do
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise UnsafeUrl(f"The host `{host}` is not a valid domain name.") from None


def host_addresses(host: str) -> list[IPAddress]:
    """Every address the host stands for: the literal itself, or what the resolver returns (no duplicates).
    Raises UnsafeUrl when it is malformed or does not resolve."""
    if not host:
        raise UnsafeUrl("The URL has no host.")
    if any(c in host for c in "%\\/@ \t\r\n") or not host.isprintable():
        raise UnsafeUrl(f"The host `{host}` contains characters that are not allowed in a host name.")
    host = _ascii_host(host)
    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise UnsafeUrl(f"The host `{host}` does not resolve ({exc}).") from None
    addresses: list[IPAddress] = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(sockaddr[0].partition("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeUrl(f"The host `{host}` does not resolve to any IP address.")
    return addresses


def url_validate(url: str, *, livemode: bool) -> str:
    """The URL, if the gateway may send webhooks to it: http(s) only (https in live mode), no user name or
    password, and every address of its host allowed. Nothing is fetched. Raises UnsafeUrl."""
    if not isinstance(url, str) or not url:
        raise UnsafeUrl("The URL is empty.")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    if not url.isprintable() or any(c in url for c in " \\"):
        raise UnsafeUrl("The URL contains spaces, backslashes or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"The URL is malformed ({exc}).") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeUrl(f"The URL must start with https:// (or http:// in test mode), not `{parts.scheme}:`.")
    if livemode and scheme != "https":
        raise UnsafeUrl("Live-mode webhook endpoints must use https://.")
    if "@" in parts.netloc:
        raise UnsafeUrl("The URL must not contain a user name or password.")
    host = parts.netloc.rpartition(":")[0] if port is not None or parts.netloc.endswith(":") else parts.netloc
    if not host:
        raise UnsafeUrl("The URL has no host.")
    if port == 0:
        raise UnsafeUrl("The URL's port must be between 1 and 65535.")
    allow_loopback = loopback_allowed(livemode=livemode)
    for address in host_addresses(host):
        reason = _refusal(address, allow_loopback=allow_loopback)
        if reason:
            shown = host if str(address) == host.strip("[]") else f"{host} ({address})"
            raise UnsafeUrl(f"The host {shown} is {reason}: webhooks cannot be sent there.")
    return url
