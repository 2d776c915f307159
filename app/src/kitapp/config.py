"""The one place where kitapp reads its configuration from the environment.

Everything here is pure: importing this module reads nothing and connects to nothing.
``load_settings()`` turns a mapping of environment variables into a frozen ``Settings``
or raises ``ConfigError`` naming the variable that is missing or malformed.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from urllib.parse import urlsplit, urlunsplit

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

BROKER_SCHEMES = ("amqp", "amqps")
RESULT_BACKEND_SCHEMES = ("redis", "rediss", "rpc")
QUEUE_TYPES = ("classic", "quorum")

MIB = 1024 * 1024


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    broker_urls: tuple[str, ...]
    result_backend: str
    default_queue: str = "kitapp"
    queue_type: str = "classic"
    task_soft_time_limit: int = 300
    task_time_limit: int = 360
    result_expires: int = 86400
    prefetch_multiplier: int = 1
    tutorial_sleep_seconds: float = 10.0
    download_dir: str = "/var/lib/kitapp/downloads"
    download_max_bytes: int = 50 * MIB
    download_timeout: int = 30
    download_allowed_networks: tuple[IPNetwork, ...] = ()
    download_deadline: int = 120  # seconds for a whole download, however slowly it trickles
    download_max_age: int = 86400  # seconds a downloaded file is kept
    download_quota_bytes: int = 1024 * MIB  # the download folder's size cap, oldest removed first
    max_request_bytes: int = 65536
    api_token_hashes: tuple[str, ...] = ()  # sha256 hex of the API tokens; empty: API open
    beat_heartbeat_seconds: int = 0
    broker_ca_file: str | None = None  # amqps:// URLs: verify the broker against this CA
    broker_tls_name: str | None = None  # amqps:// URLs: the name every broker certificate carries

    @property
    def broker_url(self) -> str:
        """The failover list in the form Celery/kombu accept: URLs joined by ';'."""
        return ";".join(self.broker_urls)

    @property
    def result_backend_is_redis(self) -> bool:
        return urlsplit(self.result_backend).scheme in ("redis", "rediss")

    def redacted(self) -> dict[str, object]:
        """The settings as plain values with every password replaced by '***'."""
        out: dict[str, object] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "broker_urls":
                value = [redact_url(url) for url in value]
            elif field.name == "result_backend":
                value = redact_url(value)
            elif field.name == "api_token_hashes":
                value = f"{len(value)} token(s)"
            elif field.name == "download_allowed_networks":
                value = [str(net) for net in value]
            out[field.name] = value
        return out


def redact_url(url: str) -> str:
    """Replace the password of a URL (if any) with '***'."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, ""))


def _get(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _parse_int(environ: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = _get(environ, name)
    if raw is None:
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def _parse_float(environ: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = _get(environ, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{name} must be a finite number >= {minimum:g}, got {raw!r}")
    return value


def _check_url(name: str, url: str, schemes: tuple[str, ...]) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ConfigError(f"{name} contains a malformed URL: {redact_url(url)!r}") from None
    if parts.scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise ConfigError(
            f"{name} must use one of {allowed}; got {parts.scheme or 'no'} scheme "
            f"in {redact_url(url)!r}"
        )
    if parts.scheme != "rpc" and not parts.hostname:
        raise ConfigError(f"{name} URL has no host: {redact_url(url)!r}")
    return url


def _parse_broker_urls(environ: Mapping[str, str]) -> tuple[str, ...]:
    name = "KITAPP_BROKER_URLS"
    raw = _get(environ, name)
    if raw is None:
        raise ConfigError(f"{name} is required (one or more amqp:// URLs separated by ';')")
    urls = tuple(part.strip() for part in raw.split(";") if part.strip())
    if not urls:
        raise ConfigError(f"{name} is required (one or more amqp:// URLs separated by ';')")
    return tuple(_check_url(name, url, BROKER_SCHEMES) for url in urls)


def _parse_networks(environ: Mapping[str, str]) -> tuple[IPNetwork, ...]:
    name = "KITAPP_DOWNLOAD_ALLOWED_NETWORKS"
    raw = _get(environ, name)
    if raw is None:
        return ()
    networks: list[IPNetwork] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(f"{name} contains an invalid CIDR network: {part!r}") from None
    return tuple(networks)


def _parse_token_hashes(environ: Mapping[str, str]) -> tuple[str, ...]:
    name = "KITAPP_API_TOKEN_HASHES"
    raw = _get(environ, name)
    if raw is None:
        return ()
    hashes = tuple(part.strip().lower() for part in raw.split(",") if part.strip())
    for value in hashes:
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise ConfigError(
                f"{name} must list SHA-256 hex digests (64 hex digits) separated by ',', "
                f"got an entry of {len(value)} characters"
            )
    return hashes


def load_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    """Read and validate every KITAPP_* variable; raise ConfigError naming the bad one."""
    broker_urls = _parse_broker_urls(environ)

    result_backend = _get(environ, "KITAPP_RESULT_BACKEND")
    if result_backend is None:
        raise ConfigError("KITAPP_RESULT_BACKEND is required (redis://, rediss:// or rpc://)")
    _check_url("KITAPP_RESULT_BACKEND", result_backend, RESULT_BACKEND_SCHEMES)

    default_queue = _get(environ, "KITAPP_DEFAULT_QUEUE") or "kitapp"
    if len(default_queue) > 255 or any(c.isspace() for c in default_queue):
        raise ConfigError(
            "KITAPP_DEFAULT_QUEUE must be a queue name without spaces, at most 255 characters"
        )

    queue_type = (_get(environ, "KITAPP_QUEUE_TYPE") or "classic").lower()
    if queue_type not in QUEUE_TYPES:
        raise ConfigError(
            f"KITAPP_QUEUE_TYPE must be one of {', '.join(QUEUE_TYPES)}, got {queue_type!r}"
        )

    soft = _parse_int(environ, "KITAPP_TASK_SOFT_TIME_LIMIT", 300, minimum=1)
    hard = _parse_int(environ, "KITAPP_TASK_TIME_LIMIT", 360, minimum=1)
    if hard <= soft:
        raise ConfigError(
            f"KITAPP_TASK_TIME_LIMIT must be an integer > KITAPP_TASK_SOFT_TIME_LIMIT "
            f"(got {hard} <= {soft})"
        )

    broker_ca_file = _get(environ, "KITAPP_BROKER_CA_FILE")
    tls = {urlsplit(url).scheme == "amqps" for url in broker_urls}
    if len(tls) > 1:
        raise ConfigError("KITAPP_BROKER_URLS must be all amqp:// or all amqps://, not a mix")
    if tls == {True} and broker_ca_file is None:
        raise ConfigError("KITAPP_BROKER_CA_FILE is required with amqps:// broker URLs")
    if broker_ca_file is not None and not os.path.isabs(broker_ca_file):
        raise ConfigError(f"KITAPP_BROKER_CA_FILE must be an absolute path, got {broker_ca_file!r}")
    broker_tls_name = _get(environ, "KITAPP_BROKER_TLS_NAME")
    if tls == {True} and len(broker_urls) > 1 and broker_tls_name is None:
        # kombu writes the first broker's host into the shared ssl options when their
        # server_hostname is None, so every later broker of the list would fail verification.
        raise ConfigError(
            "KITAPP_BROKER_TLS_NAME is required with more than one amqps:// broker URL "
            "(the name every broker's certificate carries)"
        )

    download_dir = _get(environ, "KITAPP_DOWNLOAD_DIR") or "/var/lib/kitapp/downloads"
    if not os.path.isabs(download_dir):
        raise ConfigError(f"KITAPP_DOWNLOAD_DIR must be an absolute path, got {download_dir!r}")

    download_timeout = _parse_int(environ, "KITAPP_DOWNLOAD_TIMEOUT", 30, minimum=1)
    # Default: two minutes, or half the soft limit when that is shorter.
    download_deadline = _parse_int(
        environ, "KITAPP_DOWNLOAD_DEADLINE", max(1, min(120, soft // 2)), minimum=1
    )
    if download_deadline >= soft:
        raise ConfigError(
            f"KITAPP_DOWNLOAD_DEADLINE must be below KITAPP_TASK_SOFT_TIME_LIMIT "
            f"(got {download_deadline} >= {soft})"
        )

    return Settings(
        broker_urls=broker_urls,
        result_backend=result_backend,
        default_queue=default_queue,
        queue_type=queue_type,
        task_soft_time_limit=soft,
        task_time_limit=hard,
        result_expires=_parse_int(environ, "KITAPP_RESULT_EXPIRES", 86400, minimum=1),
        prefetch_multiplier=_parse_int(environ, "KITAPP_PREFETCH_MULTIPLIER", 1, minimum=1),
        tutorial_sleep_seconds=_parse_float(
            environ, "KITAPP_TUTORIAL_SLEEP_SECONDS", 10.0, minimum=0.0
        ),
        download_dir=download_dir,
        download_max_bytes=_parse_int(environ, "KITAPP_DOWNLOAD_MAX_BYTES", 50 * MIB, minimum=1),
        download_timeout=download_timeout,
        download_allowed_networks=_parse_networks(environ),
        download_deadline=download_deadline,
        download_max_age=_parse_int(environ, "KITAPP_DOWNLOAD_MAX_AGE", 86400, minimum=1),
        download_quota_bytes=_parse_int(
            environ, "KITAPP_DOWNLOAD_QUOTA_BYTES", 1024 * MIB, minimum=1
        ),
        api_token_hashes=_parse_token_hashes(environ),
        max_request_bytes=_parse_int(environ, "KITAPP_MAX_REQUEST_BYTES", 65536, minimum=1),
        beat_heartbeat_seconds=_parse_int(environ, "KITAPP_BEAT_HEARTBEAT_SECONDS", 0, minimum=0),
        broker_ca_file=broker_ca_file if tls == {True} else None,
        broker_tls_name=broker_tls_name if tls == {True} else None,
    )
