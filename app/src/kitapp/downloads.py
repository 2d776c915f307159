"""Streaming a URL to a file with a byte cap (used by the ``kitapp.download`` task)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests

from kitapp.url_policy import IPNetwork, Resolver, check_url_allowed, system_resolver

CHUNK_BYTES = 64 * 1024
MAX_REDIRECTS = 5
USER_AGENT = "kitapp-download/0.1"


class DownloadError(Exception):
    """A download failed for a reason that retrying will not fix (4xx, too large, refused)."""


class DownloadTooLargeError(DownloadError):
    """The response is larger than KITAPP_DOWNLOAD_MAX_BYTES."""


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
    return name or "download"


def _open(
    session: requests.Session,
    url: str,
    timeout: float,
    allowed_networks: Sequence[IPNetwork],
    resolver: Resolver,
) -> requests.Response:
    """GET the URL, following redirects by hand so every hop is checked against the policy."""
    for _ in range(MAX_REDIRECTS + 1):
        try:
            check_url_allowed(url, allowed_networks, resolver)
        except ValueError as exc:
            raise DownloadError(str(exc)) from None
        response = session.get(url, stream=True, timeout=timeout, allow_redirects=False)
        if response.is_redirect:
            location = response.headers.get("Location", "")
            response.close()
            url = urljoin(url, location)
            continue
        return response
    raise DownloadError(f"more than {MAX_REDIRECTS} redirects")


def download_to_dir(
    url: str,
    directory: str,
    *,
    max_bytes: int,
    timeout: float,
    allowed_networks: Sequence[IPNetwork],
    resolver: Resolver = system_resolver,
) -> DownloadResult:
    """Stream ``url`` into a new file in ``directory``; never keep a partial file.

    Raises DownloadError (do not retry), TransientDownloadError (retry) or a requests
    ConnectionError/Timeout (retry).
    """
    os.makedirs(directory, mode=0o750, exist_ok=True)
    final_path = os.path.join(directory, f"{uuid.uuid4().hex}-{_safe_basename(url)}")
    part_path = final_path + ".part"
    with requests.Session() as session:
        session.headers["User-Agent"] = USER_AGENT
        response = _open(session, url, timeout, allowed_networks, resolver)
        with response:
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
                os.replace(part_path, final_path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(part_path)
                raise
    return DownloadResult(path=final_path, bytes=size, sha256=digest.hexdigest())
