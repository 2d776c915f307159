from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import pytest

from kitapp.url_policy import UrlNotAllowedError, check_url_allowed

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


class FakeResolver:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> Iterable[str]:
        self.calls.append((host, port))
        if host not in self.answers:
            raise UrlNotAllowedError(f"cannot resolve host {host!r}")
        return self.answers[host]


RESOLVER = FakeResolver(
    {
        "example.org": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
        "localhost": ["127.0.0.1", "::1"],
        "intranet": ["10.0.0.5"],
        "mixed": ["93.184.215.14", "192.168.1.10"],
        "metadata": ["169.254.169.254"],
        "mapped": ["::ffff:127.0.0.1"],
        "empty": [],
        "cgnat": ["100.64.0.1"],
        "scoped": ["fe80::1%eth0"],
    }
)


@pytest.mark.parametrize(
    ("url", "port"),
    [
        ("http://example.org/file", 80),
        ("https://example.org/file", 443),
        ("HTTPS://EXAMPLE.ORG:8443/x?y=1", 8443),
        ("http://93.184.215.14/", 80),
    ],
)
def test_public_urls_allowed(url: str, port: int) -> None:
    allowed = check_url_allowed(url, (), RESOLVER)
    assert allowed.port == port
    assert allowed.addresses


def test_every_address_is_returned() -> None:
    allowed = check_url_allowed("http://example.org/", (), RESOLVER)
    assert allowed.addresses == ("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c")
    assert allowed.host == "example.org"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.org/x", "URL scheme 'ftp' is not allowed"),
        ("file:///etc/passwd", "URL scheme 'file' is not allowed"),
        ("gopher://example.org/", "is not allowed"),
        ("example.org/file", "URL scheme '(none)' is not allowed"),
        ("http:///path", "URL has no host"),
        ("http://example.org:99999/", "malformed URL"),
        ("http://user:pw@example.org/", "user names or passwords are not allowed"),
        ("", "non-empty string"),
        ("http://example.org/" + "a" * 2048, "longer than 2048"),
        ("http://localhost/", "resolves to 127.0.0.1"),
        ("http://127.0.0.1:6379/", "resolves to 127.0.0.1"),
        ("http://[::1]/", "resolves to ::1"),
        ("http://0.0.0.0/", "resolves to 0.0.0.0"),
        ("http://intranet/", "resolves to 10.0.0.5"),
        ("http://mixed/", "resolves to 192.168.1.10"),
        ("http://metadata/latest", "resolves to 169.254.169.254"),
        ("http://169.254.169.254/", "resolves to 169.254.169.254"),
        ("http://mapped/", "resolves to 127.0.0.1"),
        ("http://cgnat/", "resolves to 100.64.0.1"),
        ("http://scoped/", "resolves to fe80::1"),
        ("http://240.0.0.1/", "resolves to 240.0.0.1"),
        ("http://224.0.0.1/", "resolves to 224.0.0.1"),
        ("http://empty/", "resolves to no address"),
        ("http://nosuchhost.invalid/", "cannot resolve host"),
    ],
)
def test_refused_urls(url: str, message: str) -> None:
    with pytest.raises(UrlNotAllowedError) as info:
        check_url_allowed(url, (), RESOLVER)
    assert message in str(info.value)


def test_allowed_networks_open_private_ranges() -> None:
    assert check_url_allowed(
        "http://localhost:8000/f", LOOPBACK + (ipaddress.ip_network("::1/128"),), RESOLVER
    ).addresses == ("127.0.0.1", "::1")  # noqa: E501
    assert check_url_allowed("http://127.0.0.1:8000/f", LOOPBACK, RESOLVER).port == 8000
    assert check_url_allowed("http://mapped/", LOOPBACK, RESOLVER).addresses == ("127.0.0.1",)
    with pytest.raises(UrlNotAllowedError, match="resolves to ::1"):
        check_url_allowed("http://localhost/", LOOPBACK, RESOLVER)
    with pytest.raises(UrlNotAllowedError, match="resolves to 10.0.0.5"):
        check_url_allowed("http://intranet/", LOOPBACK, RESOLVER)
    intranet = (ipaddress.ip_network("10.0.0.0/24"),)
    assert check_url_allowed("http://intranet/", intranet, RESOLVER).addresses == ("10.0.0.5",)


def test_ip_literals_are_not_resolved() -> None:
    resolver = FakeResolver({})
    check_url_allowed("http://93.184.215.14/", (), resolver)
    assert resolver.calls == []


def test_resolver_gets_host_and_default_port() -> None:
    resolver = FakeResolver({"example.org": ["93.184.215.14"]})
    check_url_allowed("https://example.org/x", (), resolver)
    assert resolver.calls == [("example.org", 443)]
