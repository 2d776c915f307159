"""Which URLs the download task may fetch (pure logic, no network unless a resolver does it).

A URL is allowed when its scheme is http or https and EVERY address its host resolves to is
either a public (globally routable) address or inside one of the explicitly allowed networks.
This keeps workers from being used to reach the broker, the result store, cloud metadata
endpoints (169.254.169.254) or anything else on the private side of the network.

Refusals name the URL's host and the general reason, never the address a name resolved to:
the message ends up in the job's error, and printing resolved addresses there would let anyone
who can submit jobs map the internal DNS. The address is logged (INFO) on the worker instead.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Iterable[str]]

ALLOWED_SCHEMES = ("http", "https")
# The longest URL the download task takes (the job request schema, public_tasks, uses it too).
MAX_URL_LENGTH = 2048
# Why an address is refused, in general terms (the same words for every refused address).
FORBIDDEN_ADDRESS = (
    "a forbidden address (private, loopback, link-local or reserved, and not in "
    "KITAPP_DOWNLOAD_ALLOWED_NETWORKS)"
)

logger = logging.getLogger(__name__)


class UrlNotAllowedError(ValueError):
    """The URL must not be fetched; the message says why."""


@dataclass(frozen=True)
class AllowedUrl:
    url: str
    host: str
    port: int
    addresses: tuple[str, ...]


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve a host name with the system resolver (every A/AAAA answer)."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise UrlNotAllowedError(
            f"host {host!r} is not allowed: it cannot be resolved ({exc.strerror})"
        ) from None
    return [str(info[4][0]) for info in infos]


def _normalise(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_public_address(address: IPAddress) -> bool:
    """True for globally routable unicast addresses only."""
    address = _normalise(address)
    return address.is_global and not (
        address.is_multicast or address.is_unspecified or address.is_reserved
    )


def address_allowed(address: IPAddress, allowed_networks: Sequence[IPNetwork]) -> bool:
    address = _normalise(address)
    if any(address.version == net.version and address in net for net in allowed_networks):
        return True
    return is_public_address(address)


def check_url_allowed(
    url: str,
    allowed_networks: Sequence[IPNetwork],
    resolver: Resolver = system_resolver,
) -> AllowedUrl:
    """Return the parsed URL if it may be fetched, else raise UrlNotAllowedError."""
    if not isinstance(url, str) or not url:
        raise UrlNotAllowedError("URL must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise UrlNotAllowedError(f"URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlNotAllowedError(f"malformed URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UrlNotAllowedError(
            f"URL scheme {parts.scheme or '(none)'!r} is not allowed; use http or https"
        )
    host = parts.hostname
    if not host:
        raise UrlNotAllowedError("URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UrlNotAllowedError("URLs with user names or passwords are not allowed")
    if port is None:
        port = 443 if scheme == "https" else 80

    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    raw_addresses = [str(literal)] if literal is not None else list(resolver(host, port))
    if not raw_addresses:
        raise UrlNotAllowedError(f"host {host!r} is not allowed: it resolves to no address")

    addresses: list[str] = []
    for raw in raw_addresses:
        try:
            address = _normalise(ipaddress.ip_address(raw.split("%", 1)[0]))
        except ValueError:
            raise UrlNotAllowedError(
                f"host {host!r} is not allowed: it resolves to an invalid address"
            ) from None
        if not address_allowed(address, allowed_networks):
            # The address goes to the worker's log only, never into the message.
            logger.info(
                "refused URL host %r: its address %s is %s", host, address, FORBIDDEN_ADDRESS
            )
            verb = "is" if literal is not None else "resolves to"
            raise UrlNotAllowedError(f"host {host!r} is not allowed: it {verb} {FORBIDDEN_ADDRESS}")
        addresses.append(str(address))
    return AllowedUrl(url=url, host=host, port=port, addresses=tuple(addresses))
