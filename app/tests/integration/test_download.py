"""The download task end to end: real worker, real HTTP server on 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path

import requests
from conftest import DOWNLOAD_MAX_BYTES, FileServer, Proc, Web, poll_until_done, sha256, submit


def downloads_dir(worker: Proc) -> Path:
    return Path(worker.log_path).parent / "downloads"


def no_partial_files(worker: Proc) -> bool:
    directory = downloads_dir(worker)
    return not directory.exists() or not any(p.suffix == ".part" for p in directory.iterdir())


def test_download_small_file(web: Web, worker: Proc, file_server: FileServer) -> None:
    job = submit(web, "download", f"{file_server.base_url}/small.bin")
    body, _ = poll_until_done(web, job["id"])
    assert body["state"] == "SUCCESS", body
    data = file_server.files["/small.bin"]
    result = body["result"]
    assert result["bytes"] == len(data)
    assert result["sha256"] == sha256(data)
    assert Path(result["path"]).parent == downloads_dir(worker)
    assert Path(result["path"]).read_bytes() == data
    assert result["hostname"]


def test_download_over_cap_with_content_length(
    web: Web, worker: Proc, file_server: FileServer
) -> None:
    job = submit(web, "download", f"{file_server.base_url}/big.bin")
    body, _ = poll_until_done(web, job["id"])
    assert body["state"] == "FAILURE"
    assert body["error"].startswith("DownloadTooLargeError: ")
    assert f"limit of {DOWNLOAD_MAX_BYTES} bytes" in body["error"]
    assert "Traceback" not in str(body)
    assert no_partial_files(worker)


def test_download_over_cap_while_streaming(web: Web, worker: Proc, file_server: FileServer) -> None:
    before = set(os.listdir(downloads_dir(worker))) if downloads_dir(worker).exists() else set()
    job = submit(web, "download", f"{file_server.base_url}/stream-big")
    body, _ = poll_until_done(web, job["id"])
    assert body["state"] == "FAILURE"
    assert body["error"].startswith("DownloadTooLargeError: ")
    assert no_partial_files(worker)
    assert set(os.listdir(downloads_dir(worker))) == before  # nothing kept


def test_download_404_fails_without_retry(web: Web, worker: Proc, file_server: FileServer) -> None:
    url = f"{file_server.base_url}/missing-{os.getpid()}.bin"
    job = submit(web, "download", url)
    body, states = poll_until_done(web, job["id"])
    assert body["state"] == "FAILURE"
    # Addresses in error texts are redacted for clients, even the one the client sent.
    shown = url.replace(file_server.base_url.removeprefix("http://"), "<address>")
    assert body["error"] == f"DownloadError: HTTP 404 Not Found for {shown}"
    assert "RETRY" not in states
    assert "retries" not in body
    assert file_server.hits[url.removeprefix(file_server.base_url)] == 1


def test_download_refuses_private_address_outside_allowed_networks(web: Web) -> None:
    job = submit(web, "download", "http://10.255.255.1/secret")
    body, _ = poll_until_done(web, job["id"])
    assert body["state"] == "FAILURE"
    assert "is a forbidden address" in body["error"]
    assert "10.255.255.1" not in body["error"]  # clients are never told internal addresses
    assert body["error"].startswith("DownloadError: ")


def test_download_refuses_other_schemes(web: Web) -> None:
    job = submit(web, "download", "file:///etc/passwd")
    body, _ = poll_until_done(web, job["id"])
    assert body["state"] == "FAILURE"
    assert "URL scheme 'file' is not allowed" in body["error"]


def test_download_connection_refused_is_retried_then_fails(web: Web) -> None:
    import socket

    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    job = submit(web, "download", f"http://127.0.0.1:{port}/file")
    body, states = poll_until_done(web, job["id"], timeout=90)
    assert body["state"] == "FAILURE"
    assert "RETRY" in states, states
    assert body["error"].startswith("ConnectionError: ")
    assert body["retries"] == 3
    details = requests.get(web.url(f"/api/jobs/{job['id']}")).json()
    assert details["state"] == "FAILURE"
