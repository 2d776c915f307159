from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable

import pytest

from kitapp.url_policy import UrlNotAllowedError, check_url_allowed, system_resolver

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


class FakeResolver:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> Iterable[str]:
        self.calls.append((host, port))
        if host not in self.answers:
            raise UrlNotAllowedError(f"host {host!r} is not allowed: it cannot be resolved")
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
        ("http://empty/", "host 'empty' is not allowed: it resolves to no address"),
        ("http://nosuchhost.invalid/", "host 'nosuchhost.invalid' is not allowed"),
    ],
)
def test_refused_urls(url: str, message: str) -> None:
    with pytest.raises(UrlNotAllowedError) as info:
        check_url_allowed(url, (), RESOLVER)
    assert message in str(info.value)


FORBIDDEN = (
    "a forbidden address (private, loopback, link-local or reserved, and not in "
    "KITAPP_DOWNLOAD_ALLOWED_NETWORKS)"
)


@pytest.mark.parametrize(
    ("url", "host", "address"),
    [
        ("http://localhost/", "localhost", "127.0.0.1"),
        ("http://intranet/", "intranet", "10.0.0.5"),
        ("http://mixed/", "mixed", "192.168.1.10"),
        ("http://metadata/latest", "metadata", "169.254.169.254"),
        ("http://mapped/", "mapped", "127.0.0.1"),
        ("http://cgnat/", "cgnat", "100.64.0.1"),
        ("http://scoped/", "scoped", "fe80::1"),
    ],
)
def test_refused_names_do_not_reveal_the_address(
    url: str, host: str, address: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.INFO, logger="kitapp.url_policy"),
        pytest.raises(UrlNotAllowedError) as info,
    ):
        check_url_allowed(url, (), RESOLVER)
    message = str(info.value)
    assert message == f"host {host!r} is not allowed: it resolves to {FORBIDDEN}"
    for answer in RESOLVER.answers[host]:
        assert answer.split("%")[0] not in message
    assert address not in message
    # The worker's log has the detail.
    assert f"its address {address} is" in caplog.text
    assert repr(host) in caplog.text


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://127.0.0.1:6379/", "127.0.0.1"),
        ("http://[::1]/", "::1"),
        ("http://0.0.0.0/", "0.0.0.0"),
        ("http://169.254.169.254/", "169.254.169.254"),
        ("http://240.0.0.1/", "240.0.0.1"),
        ("http://224.0.0.1/", "224.0.0.1"),
    ],
)
def test_refused_address_literals(url: str, host: str) -> None:
    with pytest.raises(UrlNotAllowedError) as info:
        check_url_allowed(url, (), RESOLVER)
    assert str(info.value) == f"host {host!r} is not allowed: it is {FORBIDDEN}"


def test_system_resolver_failure_names_the_host_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_host(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)  # no DNS query from a unit test
    with pytest.raises(UrlNotAllowedError) as info:
        system_resolver("nosuchhost.invalid", 80)
    assert str(info.value).startswith(
        "host 'nosuchhost.invalid' is not allowed: it cannot be resolved ("
    )


def test_allowed_networks_open_private_ranges() -> None:
    assert check_url_allowed(
        "http://localhost:8000/f", LOOPBACK + (ipaddress.ip_network("::1/128"),), RESOLVER
    ).addresses == ("127.0.0.1", "::1")  # noqa: E501
    assert check_url_allowed("http://127.0.0.1:8000/f", LOOPBACK, RESOLVER).port == 8000
    assert check_url_allowed("http://mapped/", LOOPBACK, RESOLVER).addresses == ("127.0.0.1",)
    with pytest.raises(UrlNotAllowedError, match="host 'localhost' is not allowed") as info:
        check_url_allowed("http://localhost/", LOOPBACK, RESOLVER)  # ::1 is not in 127/8
    assert "::1" not in str(info.value)
    with pytest.raises(UrlNotAllowedError, match="resolves to a forbidden address") as info:
        check_url_allowed("http://intranet/", LOOPBACK, RESOLVER)
    assert "10.0.0.5" not in str(info.value)
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
