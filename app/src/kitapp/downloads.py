"""Streaming a URL to a file with a byte cap (used by the ``kitapp.download`` task).

Three guarantees beyond the byte cap:

* **The connection goes to the address the policy vetted.** ``check_url_allowed`` resolves the
  host once; the request is then sent to exactly that address (urllib3's documented way of
  connecting by IP: the pool's host is the address, while the Host header, the TLS SNI name
  and the certificate check use the URL's host name). Nothing resolves the name a second time,
  so a resolver that answers a public address to the check and 127.0.0.1 to the connection
  (DNS rebinding) gets nowhere. Every redirect hop is checked and pinned the same way.
* **A whole download has a deadline.** The read timeout bounds each read, not the download: a
  server trickling a byte a second would hold a worker slot until the soft time limit. A timer
  shuts the download's sockets down when the deadline passes, whatever phase it is in
  (connecting, TLS handshake, headers, body), and the download fails with
  DownloadDeadlineError (not retried: a slow server will be slow again).
* **Error texts name no resolved address.** Connection errors from requests/urllib3 name the
  pool's host, which is now the pinned IP; they are re-raised as the same exception class (the
  task's retry rules are unchanged) with a message naming the URL instead. The original
  error, address included, is logged on the worker.

``prune_downloads`` keeps the download folder within an age and a size limit.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import os
import re
import socket
import stat
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from http.cookiejar import CookieJar
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar, extract_cookies_to_jar
from requests.utils import default_headers
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from kitapp.url_policy import (
    AllowedUrl,
    IPNetwork,
    Resolver,
    check_url_allowed,
    system_resolver,
)

CHUNK_BYTES = 64 * 1024
MAX_REDIRECTS = 5
USER_AGENT = "kitapp-download/0.1"
PART_SUFFIX = ".part"
# The names download_to_dir gives its files: 32 hex digits, '-', a sanitised base name (see
# _safe_basename), and ".part" while the download is running. prune_downloads removes nothing
# else.
DOWNLOAD_NAME = re.compile(r"[0-9a-f]{32}-[A-Za-z0-9_-][A-Za-z0-9._-]{0,79}")
DEFAULT_PORTS = {"http": 80, "https": 443}

logger = logging.getLogger(__name__)


class DownloadError(Exception):
    """A download failed for a reason that retrying will not fix (4xx, too large, refused)."""


class DownloadTooLargeError(DownloadError):
    """The response is larger than KITAPP_DOWNLOAD_MAX_BYTES."""


class DownloadDeadlineError(DownloadError):
    """The download took longer than KITAPP_DOWNLOAD_DEADLINE (all hops and the body)."""


class TransientDownloadError(Exception):
    """A download failed for a reason that may go away (5xx); the task retries it."""


@dataclass(frozen=True)
class DownloadResult:
    path: str
    bytes: int
    sha256: str


def _safe_basename(url: str) -> str:
    name = os.path.basename(urlsplit(url).path) or "download"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:80].lstrip(".")
    if name.endswith(PART_SUFFIX):  # only partial files end in ".part" (prune_downloads)
        name = name[: -len(PART_SUFFIX)] + "_part"
    return name or "download"


# --- The deadline ------------------------------------------------------------------------


class _Deadline:
    """A wall-clock limit for one download; when it passes, the download's sockets are shut.

    Shutting a socket down (from the timer's thread) makes a read blocked on it in the
    download's thread return at once, whichever library is reading. Sockets are held as
    objects, never as descriptor numbers: a closed socket's shutdown fails harmlessly instead
    of hitting whatever reused its descriptor.
    """

    def __init__(self, seconds: float, url: str) -> None:
        self.seconds = seconds
        self.url = url
        self._ends = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        with self._lock:
            self._sockets.clear()

    def remaining(self) -> float:
        return self._ends - time.monotonic()

    @property
    def passed(self) -> bool:
        return self._expired or self.remaining() <= 0

    def error(self) -> DownloadDeadlineError:
        return DownloadDeadlineError(
            f"{self.url} did not download within the deadline of {self.seconds:g} seconds "
            "(KITAPP_DOWNLOAD_DEADLINE)"
        )

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if not self._expired:
                self._sockets.append(sock)
                return
        _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    # socket.socket's own shutdown, also for an SSLSocket: SSLSocket.shutdown would drop the
    # TLS state that the download's thread may be using right now.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


# The deadline of the download running in this thread/context, for the connections below.
_active_deadline: contextvars.ContextVar[_Deadline | None] = contextvars.ContextVar(
    "kitapp_download_deadline", default=None
)


def _watch(sock: socket.socket | None) -> None:
    deadline = _active_deadline.get()
    if deadline is not None and sock is not None:
        deadline.watch(sock)


class _DeadlineWatchedMixin:
    """Hands every socket of a connection to the active deadline, from the TCP connect on."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # type: ignore[misc]
        _watch(sock)  # before the TLS handshake, which a slow server can trickle too
        return sock

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _watch(self.sock)  # type: ignore[attr-defined]  # the TLS socket, for https


class _HTTPConnection(_DeadlineWatchedMixin, HTTPConnection):
    pass


class _HTTPSConnection(_DeadlineWatchedMixin, HTTPSConnection):
    pass


class _HTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


# --- Pinning -----------------------------------------------------------------------------


def _origin(parts: SplitResult) -> tuple[str, str, int]:
    scheme = parts.scheme.lower()
    return scheme, parts.hostname or "", parts.port or DEFAULT_PORTS.get(scheme, 0)


def _host_header(parts: SplitResult) -> str:
    scheme, host, port = _origin(parts)
    if ":" in host:
        host = f"[{host}]"
    return host if port == DEFAULT_PORTS.get(scheme) else f"{host}:{port}"


class _PinnedAdapter(HTTPAdapter):
    """Sends a request to the address pinned for its origin, and refuses any other request.

    The pool is keyed by (and connects to) the pinned address; for https the pool's
    ``server_hostname`` (SNI) and ``assert_hostname`` (certificate check) are the URL's host
    name, as urllib3's documentation shows for connecting to a host by IP. The caller sets the
    Host header. Its connections report their sockets to the active deadline.
    """

    def __init__(self) -> None:
        self._pin: tuple[tuple[str, str, int], str] | None = None
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _HTTPConnectionPool,
            "https": _HTTPSConnectionPool,
        }

    def pin(self, url: str, address: str) -> None:
        self._pin = (_origin(urlsplit(url)), address)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        origin = _origin(urlsplit(request.url or ""))
        if self._pin is None or self._pin[0] != origin:
            # Fail closed: only the request whose host the policy just vetted may connect.
            raise DownloadError("refusing to connect to a host whose address was not checked")
        host_params["host"] = self._pin[1]
        if origin[0] == "https":
            pool_kwargs["server_hostname"] = origin[1]
            pool_kwargs["assert_hostname"] = origin[1]
        return host_params, pool_kwargs


# --- Errors without addresses ------------------------------------------------------------


def _os_error_text(exc: BaseException) -> str | None:
    """The strerror of the first OSError with an errno in the exception's causes, if any."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and isinstance(current.errno, int):
            return os.strerror(current.errno)
        nexts = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        nexts.extend(current.args)
        todo.extend(e for e in nexts if isinstance(e, BaseException))
    return None


def _without_address(exc: requests.RequestException, url: str) -> requests.RequestException:
    """The same kind of error (so the task retries what it retried), naming the URL only.

    requests' texts name the connection pool's host, which is the pinned IP address.
    """
    if isinstance(exc, requests.ConnectTimeout):
        what = "connecting timed out"
    elif isinstance(exc, requests.exceptions.SSLError):
        what = "TLS handshake or certificate check failed"
    elif isinstance(exc, requests.Timeout) or "timed out" in str(exc):
        what = "reading timed out"
    elif isinstance(exc, requests.exceptions.ChunkedEncodingError):
        what = "the connection broke off in the middle of the response"
    elif isinstance(exc, requests.exceptions.ContentDecodingError):
        what = "the response body cannot be decoded"
    elif isinstance(exc, requests.ConnectionError):
        reason = _os_error_text(exc)
        what = f"connection failed ({reason})" if reason else "connection failed"
    else:
        what = "request failed"
    logger.info("download of %s: %s: %s", url, what, exc)
    return type(exc)(f"{what} for {url}")


def _is_connect_failure(exc: requests.ConnectionError) -> bool:
    """True when no connection was made at all (the next vetted address may work)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


# --- Downloading -------------------------------------------------------------------------


def _prepare(url: str, cookies: CookieJar) -> requests.PreparedRequest:
    headers = default_headers()
    headers["User-Agent"] = USER_AGENT
    try:
        request = requests.Request("GET", url, headers=headers, cookies=cookies).prepare()
    except requests.RequestException as exc:
        raise DownloadError(f"malformed URL: {exc}") from None
    request.headers["Host"] = _host_header(urlsplit(request.url or ""))
    return request


def _send_pinned(
    adapter: _PinnedAdapter,
    request: requests.PreparedRequest,
    allowed: AllowedUrl,
    timeout: float,
    verify: bool | str,
    deadline: _Deadline,
) -> requests.Response:
    """Send to the vetted addresses in order until one accepts the connection."""
    for index, address in enumerate(allowed.addresses):
        remaining = deadline.remaining()
        if remaining <= 0:
            raise deadline.error()
        adapter.pin(request.url or "", address)
        per_read = min(timeout, remaining)
        try:
            return adapter.send(
                request, stream=True, timeout=(per_read, per_read), verify=verify, proxies={}
            )
        except requests.ConnectionError as exc:
            last = index == len(allowed.addresses) - 1
            if last or deadline.passed or not _is_connect_failure(exc):
                raise
            logger.info("download of %s: no connection to %s: %s", allowed.url, address, exc)
    raise AssertionError("check_url_allowed returns at least one address")


def _open(
    adapter: _PinnedAdapter,
    url: str,
    timeout: float,
    allowed_networks: Sequence[IPNetwork],
    resolver: Resolver,
    verify: bool | str,
    deadline: _Deadline,
) -> tuple[requests.Response, str]:
    """GET the URL, following redirects by hand so every hop is checked and pinned.

    Returns the response and the URL it answers.
    """
    cookies = RequestsCookieJar()
    for _ in range(MAX_REDIRECTS + 1):
        try:
            allowed = check_url_allowed(url, allowed_networks, resolver)
        except ValueError as exc:  # UrlNotAllowedError, or a resolver's own ValueError
            raise DownloadError(str(exc)) from None
        request = _prepare(url, cookies)
        try:
            response = _send_pinned(adapter, request, allowed, timeout, verify, deadline)
        except requests.RequestException as exc:
            if deadline.passed:
                raise deadline.error() from None
            raise _without_address(exc, url) from None
        extract_cookies_to_jar(cookies, request, response.raw)
        if response.is_redirect:
            location = response.headers.get("Location", "")
            response.close()  # without reading the body: no size or time limit applies to it
            url = urljoin(url, location)
            continue
        return response, url
    raise DownloadError(f"more than {MAX_REDIRECTS} redirects")


def download_to_dir(
    url: str,
    directory: str,
    *,
    max_bytes: int,
    timeout: float,
    deadline: float,
    allowed_networks: Sequence[IPNetwork],
    resolver: Resolver = system_resolver,
    verify: bool | str = True,
) -> DownloadResult:
    """Stream ``url`` into a new file in ``directory``; never keep a partial file.

    ``timeout`` bounds each connect and each read; ``deadline`` (seconds) bounds the whole
    download, every redirect hop and the body included (name resolution excepted: the
    resolver is not interruptible). ``verify`` is requests' verify (True: the default CA
    bundle; a path: that CA bundle). Environment proxy settings are not used: a proxy would
    resolve the host itself, defeating the pinning.

    Raises DownloadError (do not retry; DownloadDeadlineError when the deadline passed),
    TransientDownloadError (retry) or a requests ConnectionError/Timeout (retry).
    """
    os.makedirs(directory, mode=0o750, exist_ok=True)
    final_path = os.path.join(directory, f"{uuid.uuid4().hex}-{_safe_basename(url)}")
    part_path = final_path + PART_SUFFIX
    with _Deadline(deadline, url) as limit, contextlib.closing(_PinnedAdapter()) as adapter:
        token = _active_deadline.set(limit)
        try:
            response, answered = _open(
                adapter, url, timeout, allowed_networks, resolver, verify, limit
            )
            with response:
                try:
                    size, digest = _save(response, url, part_path, final_path, max_bytes, limit)
                except requests.RequestException as exc:
                    if limit.passed:
                        raise limit.error() from None
                    raise _without_address(exc, answered) from None
                except OSError:
                    if limit.passed:  # a read on a socket the deadline shut
                        raise limit.error() from None
                    raise
        finally:
            _active_deadline.reset(token)
    return DownloadResult(path=final_path, bytes=size, sha256=digest)


def _save(
    response: requests.Response,
    url: str,
    part_path: str,
    final_path: str,
    max_bytes: int,
    deadline: _Deadline,
) -> tuple[int, str]:
    status = response.status_code
    if 400 <= status < 500:
        raise DownloadError(f"HTTP {status} {response.reason} for {url}")
    if status >= 500:
        raise TransientDownloadError(f"HTTP {status} {response.reason} for {url}")
    if status != 200:
        raise DownloadError(f"unexpected HTTP {status} {response.reason} for {url}")
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise DownloadTooLargeError(
            f"{url} is {int(declared)} bytes, more than the limit of {max_bytes} bytes"
        )
    digest = hashlib.sha256()
    size = 0
    try:
        with open(part_path, "xb") as out:
            for chunk in response.iter_content(chunk_size=CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise DownloadTooLargeError(
                        f"{url} is more than the limit of {max_bytes} bytes"
                    )
                digest.update(chunk)
                out.write(chunk)
                if deadline.passed:
                    raise deadline.error()
        # A body without a length ends at EOF, which a shut socket also produces.
        if deadline.passed:
            raise deadline.error()
        os.replace(part_path, final_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part_path)
        raise
    return size, digest.hexdigest()


# --- Pruning -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    name: str
    size: int
    mtime: float
    partial: bool


def _download_files(dir_fd: int) -> list[_Entry]:
    entries: list[_Entry] = []
    with os.scandir(dir_fd) as scan:
        for entry in scan:
            name = entry.name
            partial = name.endswith(PART_SUFFIX)
            base = name[: -len(PART_SUFFIX)] if partial else name
            if not DOWNLOAD_NAME.fullmatch(base):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # removed meanwhile (another worker's prune)
                continue
            if not stat.S_ISREG(info.st_mode):  # symlinks, directories, fifos: never ours
                continue
            entries.append(_Entry(name, info.st_size, info.st_mtime, partial))
    return entries


def prune_downloads(
    directory: str,
    *,
    max_age: float,
    quota_bytes: int,
    now: float | None = None,
    reserve_bytes: int = 0,
    part_max_age: float = 3600.0,
) -> list[str]:
    """Remove old downloads, then the oldest ones until the folder fits its quota.

    Only regular files named as download_to_dir names them are considered (never symlinks,
    never anything in a subfolder). First every finished download older than ``max_age``
    seconds (by modification time) is removed, then the oldest finished downloads until the
    files' total size plus ``reserve_bytes`` (room for the download about to start) is at
    most ``quota_bytes``. A partial file (``*.part``) may belong to a download still running
    in another process, so it is removed only once unmodified for ``part_max_age`` seconds
    (the task's hard time limit: its writer is dead by then); it counts towards the quota.

    Returns the paths removed, oldest first. A missing folder has nothing to remove.
    """
    now = time.time() if now is None else now
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return []
    removed: list[str] = []
    try:
        entries = sorted(_download_files(dir_fd), key=lambda e: (e.mtime, e.name))
        total = sum(e.size for e in entries)

        def remove(entry: _Entry) -> bool:
            nonlocal total
            try:
                os.unlink(entry.name, dir_fd=dir_fd)  # relative to the folder, not a path
            except FileNotFoundError:
                pass  # another worker removed it first
            except OSError as exc:
                logger.warning("cannot remove %s from %s: %s", entry.name, directory, exc)
                return False
            else:
                removed.append(os.path.join(directory, entry.name))
            total -= entry.size
            return True

        kept: list[_Entry] = []
        for entry in entries:
            limit = part_max_age if entry.partial else max_age
            if now - entry.mtime > limit and remove(entry):
                continue
            kept.append(entry)
        for entry in kept:
            if total + reserve_bytes <= quota_bytes:
                break
            if not entry.partial:
                remove(entry)
    finally:
        os.close(dir_fd)
    return removed
