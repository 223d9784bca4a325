"""gateway.ssrf: every notation of a refused address is refused; nothing is fetched, nothing leaves 127.0.0.1."""
import ipaddress
import socket

import pytest

from gateway.ssrf import UnsafeUrl, address_allowed, host_addresses, loopback_allowed, url_validate

ip = ipaddress.ip_address

# Test mode with GATEWAY_WEBHOOK_ALLOW_LOOPBACK (the test settings): loopback is allowed, nothing else private.
LOOPBACK_NOTATIONS = [
    "http://127.0.0.1:8000/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://2130706433/hook",
    "http://0x7f000001/hook",
    "http://0177.0.0.1/hook",
    "http://127.1/hook",
    "http://[::ffff:7f00:1]/hook",
    "http://127.0.0.1./hook",
    "http://localhost:9/hook",
]

ALWAYS_REFUSED = [
    ("http://10.0.0.1/hook", "10.0.0.1"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ("http://[64:ff9b::a00:1]/hook", "10.0.0.1"),  # NAT64 of 10.0.0.1
    ("http://0.0.0.0/hook", "0.0.0.0"),
    ("http://0/hook", "0.0.0.0"),
    ("http://[::]/hook", "[::]"),
    ("http://172.16.5.4/hook", "172.16.5.4"),
    ("http://192.168.1.1/hook", "192.168.1.1"),
    ("http://100.64.0.1/hook", "100.64.0.1"),
    ("http://100.100.100.200/hook", "100.100.100.200"),
    ("http://[fd00:ec2::254]/hook", "fd00:ec2::254"),
    ("http://[fe80::1]/hook", "fe80::1"),
    ("http://[fc00::1]/hook", "fc00::1"),
    ("http://[fec0::1]/hook", "fec0::1"),
    ("http://224.0.0.1/hook", "224.0.0.1"),
    ("http://255.255.255.255/hook", "255.255.255.255"),
    ("http://240.0.0.1/hook", "240.0.0.1"),
    ("http://192.0.2.1/hook", "192.0.2.1"),
    ("http://198.51.100.1/hook", "198.51.100.1"),
    ("http://203.0.113.1/hook", "203.0.113.1"),
    ("http://198.18.0.1/hook", "198.18.0.1"),
    ("http://[2001:db8::1]/hook", "2001:db8::1"),
    ("http://[::ffff:10.0.0.1]/hook", "10.0.0.1"),
    ("http://[::ffff:169.254.169.254]/hook", "169.254.169.254"),
    ("http://[::a00:1]/hook", "10.0.0.1"),  # IPv4-compatible
    ("http://[::127.0.0.1]/hook", "127.0.0.1"),  # IPv4-compatible loopback is not loopback: refused
    ("http://[64:ff9b::7f00:1]/hook", "127.0.0.1"),  # NAT64 of loopback goes through a gateway: refused
    ("http://[2002:a9fe:a9fe::]/hook", "169.254.169.254"),  # 6to4
    ("http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/hook", "10.0.0.1"),  # Teredo, client 10.0.0.1 (obfuscated)
    ("http://0x0a.0.0.1/hook", "10.0.0.1"),
    ("http://012.0.0.1/hook", "10.0.0.1"),
    ("http://167772161/hook", "10.0.0.1"),
    ("http://10.1/hook", "10.0.0.1"),
    ("http://１０.０.０.１/hook", "10.0.0.1"),  # fullwidth digits, mapped to ASCII by IDNA as browsers do
]


@pytest.mark.parametrize("url", LOOPBACK_NOTATIONS)
def test_loopback_in_any_notation_is_allowed_only_in_test_mode_with_the_setting(url, settings):
    settings.GATEWAY_WEBHOOK_ALLOW_LOOPBACK = True
    assert url_validate(url, livemode=False) == url

    settings.GATEWAY_WEBHOOK_ALLOW_LOOPBACK = False
    with pytest.raises(UnsafeUrl) as exc:
        url_validate(url, livemode=False)
    assert "loopback" in exc.value.message


@pytest.mark.parametrize("url", LOOPBACK_NOTATIONS)
def test_loopback_is_never_allowed_in_live_mode(url, settings):
    settings.GATEWAY_WEBHOOK_ALLOW_LOOPBACK = True
    https = url.replace("http://", "https://", 1)
    with pytest.raises(UnsafeUrl) as exc:
        url_validate(https, livemode=True)
    assert "loopback" in exc.value.message


@pytest.mark.parametrize("url, shown", ALWAYS_REFUSED)
@pytest.mark.parametrize("livemode", [False, True])
def test_private_special_and_metadata_addresses_are_refused_in_every_notation(url, shown, livemode, settings):
    settings.GATEWAY_WEBHOOK_ALLOW_LOOPBACK = True
    if livemode:
        url = url.replace("http://", "https://", 1)
    with pytest.raises(UnsafeUrl) as exc:
        url_validate(url, livemode=livemode)
    assert shown in exc.value.message and "cannot be sent there" in exc.value.message


def test_a_name_resolving_to_a_private_address_is_refused(monkeypatch):
    # The one DNS case without a network: a name whose resolver answer is private (and one public beside it).
    def fake_getaddrinfo(host, port, *args, **kwargs):
        assert host == "internal.shop.test"
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("1.1.1.1", 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 0)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(UnsafeUrl) as exc:
        url_validate("https://internal.shop.test/hook", livemode=True)
    assert "internal.shop.test (10.1.2.3)" in exc.value.message and "private" in exc.value.message


def test_localhost_resolves_to_loopback_from_etc_hosts(settings):
    assert ip("127.0.0.1") in host_addresses("localhost")
    settings.GATEWAY_WEBHOOK_ALLOW_LOOPBACK = False
    with pytest.raises(UnsafeUrl, match="localhost"):
        url_validate("http://localhost:8000/hook", livemode=False)


def test_a_name_that_does_not_resolve_is_refused():
    # A name the resolver refuses before any query (an empty label): no DNS traffic leaves the machine.
    with pytest.raises(UnsafeUrl, match="does not resolve"):
        url_validate("https://bad..name/hook", livemode=True)


def test_test_mode_accepts_loopback_with_a_port_but_still_refuses_private(settings):
    settings.GATEWAY_WEBHOOK_ALLOW_LOOPBACK = True
    assert url_validate("http://127.0.0.1:8765/webhooks", livemode=False) == "http://127.0.0.1:8765/webhooks"
    with pytest.raises(UnsafeUrl, match="10.0.0.1"):
        url_validate("http://10.0.0.1:8765/webhooks", livemode=False)


def test_live_mode_needs_https():
    with pytest.raises(UnsafeUrl, match="https"):
        url_validate("http://1.1.1.1/hook", livemode=True)
    assert url_validate("https://1.1.1.1:8443/hook?x=1", livemode=True) == "https://1.1.1.1:8443/hook?x=1"
    assert url_validate("http://1.1.1.1/hook", livemode=False) == "http://1.1.1.1/hook"


@pytest.mark.parametrize("url, words", [
    ("ftp://1.1.1.1/hook", "https://"),
    ("file:///etc/passwd", "https://"),
    ("gopher://1.1.1.1/", "https://"),
    ("https://user:pass@1.1.1.1/hook", "user name or password"),
    ("https://user@1.1.1.1/hook", "user name or password"),
    ("https://1.1.1.1@127.0.0.1/hook", "user name or password"),
    ("https:///hook", "no host"),
    ("https://:443/hook", "no host"),
    ("https://1.1.1.1:0/hook", "port"),
    ("https://1.1.1.1:99999/hook", "malformed"),
    ("https://[::1/hook", "malformed"),
    ("https://1.1.1.1\\@127.0.0.1/", "backslashes"),
    ("https://1.1.1.1/ho ok", "spaces"),
    ("https://%31%32%37.0.0.1/", "not allowed in a host"),
    ("https://[fe80::1%25eth0]/", "not allowed in a host"),
    ("https://08.0.0.1/", "neither a valid IPv4"),
    ("https://1.2.3.4.5/", "neither a valid IPv4"),
    ("https://256.1.1.1/", "out-of-range"),
    ("https://1.16777216/", "out-of-range"),
    ("", "empty"),
    ("https://1.1.1.1/" + "a" * 2100, "longer than"),
])
def test_malformed_urls_are_refused_with_a_reason(url, words):
    with pytest.raises(UnsafeUrl) as exc:
        url_validate(url, livemode=True)
    assert words in exc.value.message


@pytest.mark.parametrize("host, expected", [
    ("2130706433", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("127.0.1", "127.0.0.1"),
    ("0x7f.1", "127.0.0.1"),
    ("1.1.1.1", "1.1.1.1"),
    ("[::1]", "::1"),
    ("::1", "::1"),
    ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
])
def test_host_addresses_reads_numeric_hosts_as_resolvers_do(host, expected):
    assert host_addresses(host) == [ip(expected)]


def test_host_addresses_agrees_with_the_system_resolver_on_odd_ipv4_notations():
    for host in ("2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.1"):
        system = {info[4][0] for info in socket.getaddrinfo(host, None, socket.AF_INET)}
        assert {str(a) for a in host_addresses(host)} == system


@pytest.mark.parametrize("address, allowed, allowed_with_loopback", [
    ("1.1.1.1", True, True),
    ("2606:4700:4700::1111", True, True),
    ("127.0.0.1", False, True),
    ("127.255.0.9", False, True),
    ("::1", False, True),
    ("::ffff:127.0.0.1", False, True),
    ("10.0.0.1", False, False),
    ("100.64.0.1", False, False),
    ("169.254.169.254", False, False),
    ("fd00:ec2::254", False, False),
    ("100.100.100.200", False, False),
    ("0.0.0.0", False, False),
    ("::", False, False),
    ("::ffff:1.1.1.1", True, True),
    ("64:ff9b::101:101", True, True),  # NAT64 of a public address
    ("2002:101:101::1", True, True),  # 6to4 of a public address
    ("64:ff9b::7f00:1", False, False),
    ("::7f00:1", False, False),
])
def test_address_allowed(address, allowed, allowed_with_loopback):
    assert address_allowed(ip(address), allow_loopback=False) is allowed
    assert address_allowed(ip(address), allow_loopback=True) is allowed_with_loopback


def test_loopback_allowed_needs_test_mode_and_the_setting(settings):
    settings.GATEWAY_WEBHOOK_ALLOW_LOOPBACK = True
    assert loopback_allowed(livemode=False) is True
    assert loopback_allowed(livemode=True) is False
    settings.GATEWAY_WEBHOOK_ALLOW_LOOPBACK = False
    assert loopback_allowed(livemode=False) is False
