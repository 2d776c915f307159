"""Integration fixtures: a real RabbitMQ and Redis (started by services.sh), a real
``celery worker`` subprocess, a real gunicorn (2 worker processes) subprocess, and a local
HTTP file server for the download task. Nothing runs eagerly.

If RabbitMQ or Redis is not reachable the tests FAIL (they are never skipped):
run ``bash app/tests/integration/services.sh start`` first.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

HERE = Path(__file__).resolve().parent
SERVICES_SH = HERE / "services.sh"

AMQP_PORT = int(os.environ.get("KITAPP_TEST_AMQP_PORT", "5672"))
REDIS_PORT = int(os.environ.get("KITAPP_TEST_REDIS_PORT", "6379"))
VHOST = os.environ.get("KITAPP_TEST_VHOST", "kitapp_test")
AMQP_USER = os.environ.get("KITAPP_TEST_AMQP_USER", "kitapp_test")
AMQP_PASSWORD = os.environ.get("KITAPP_TEST_AMQP_PASSWORD", "kitapp_test")
REDIS_DB = 1

BROKER_URL = f"amqp://{AMQP_USER}:{AMQP_PASSWORD}@127.0.0.1:{AMQP_PORT}/{VHOST}"
RESULT_BACKEND = f"redis://127.0.0.1:{REDIS_PORT}/{REDIS_DB}"
QUEUE = "kitapp-integration"
DOWNLOAD_MAX_BYTES = 1024 * 1024
SMALL_FILE_BYTES = 300 * 1024 + 17
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def kitapp_env(tmp: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITAPP_")}
    env.update(
        {
            "KITAPP_BROKER_URLS": BROKER_URL,
            "KITAPP_RESULT_BACKEND": RESULT_BACKEND,
            "KITAPP_DEFAULT_QUEUE": QUEUE,
            "KITAPP_TUTORIAL_SLEEP_SECONDS": "1",
            "KITAPP_DOWNLOAD_DIR": str(tmp / "downloads"),
            "KITAPP_DOWNLOAD_MAX_BYTES": str(DOWNLOAD_MAX_BYTES),
            "KITAPP_DOWNLOAD_TIMEOUT": "5",
            "KITAPP_DOWNLOAD_ALLOWED_NETWORKS": "127.0.0.0/8",
            "KITAPP_MAX_REQUEST_BYTES": "4096",
            "KITAPP_RESULT_EXPIRES": "3600",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


def run_services_sh(*args: str) -> None:
    subprocess.run(["bash", str(SERVICES_SH), *args], check=True, timeout=180)


def _check_services() -> None:
    import redis
    from kombu import Connection

    problems = []
    try:
        redis.Redis(host="127.0.0.1", port=REDIS_PORT, socket_connect_timeout=2).ping()
    except Exception as exc:
        problems.append(f"Redis at 127.0.0.1:{REDIS_PORT}: {type(exc).__name__}: {exc}")
    try:
        with Connection(BROKER_URL, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
    except Exception as exc:
        problems.append(
            f"RabbitMQ at 127.0.0.1:{AMQP_PORT} vhost {VHOST}: {type(exc).__name__}: {exc}"
        )
    if problems:
        pytest.fail(
            "integration services are not reachable ("
            + "; ".join(problems)
            + f"). Start them with: bash {SERVICES_SH} start",
            pytrace=False,
        )


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def start_proc(name: str, argv: list[str], env: dict[str, str], log_path: Path) -> Proc:
    log_file = open(log_path, "wb")  # noqa: SIM115 - handed to the child, closed at exit
    popen = subprocess.Popen(
        argv, env=env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    log_file.close()
    return Proc(name=name, popen=popen, log_path=log_path)


@dataclass
class FileServer:
    base_url: str
    files: dict[str, bytes]
    hits: dict[str, int] = field(default_factory=dict)


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "kitapp-test"
    files: dict[str, bytes] = {}
    hits: dict[str, int] = {}

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path == "/stream-big":
            # No Content-Length: the cap must be enforced while streaming.
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"z" * 65536
            try:
                for _ in range(DOWNLOAD_MAX_BYTES // len(chunk) + 8):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kitapp-it")


@pytest.fixture(scope="session")
def file_server() -> Iterator[FileServer]:
    small = os.urandom(SMALL_FILE_BYTES)
    files = {"/small.bin": small, "/big.bin": b"x" * (DOWNLOAD_MAX_BYTES + 1)}
    handler = type("Handler", (_Handler,), {"files": files, "hits": {}})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    yield FileServer(base_url=f"http://127.0.0.1:{port}", files=files, hits=handler.hits)
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def services() -> None:
    _check_services()


@pytest.fixture(scope="session")
def worker(services: None, tmp_root: Path) -> Iterator[Proc]:
    env = kitapp_env(tmp_root)
    celery = [sys.executable, "-m", "celery", "-A", "kitapp.celery_app"]
    # Drop messages a previous, interrupted run may have left in the test queue.
    subprocess.run(
        [*celery, "purge", "-f", "-Q", QUEUE], env=env, check=False, timeout=60,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    proc = start_proc(
        "worker",
        [*celery, "worker", "--loglevel=INFO", "--concurrency=2",
         f"--hostname=kitapp-it-{os.getpid()}@%h", "--without-mingle", "--without-gossip"],
        env,
        tmp_root / "worker.log",
    )  # fmt: skip
    try:
        wait_for(
            lambda: proc.popen.poll() is not None or " ready." in proc.log(),
            START_TIMEOUT,
            "the celery worker to be ready",
        )
        if proc.popen.poll() is not None:
            pytest.fail(f"celery worker exited early:\n{proc.log()[-3000:]}", pytrace=False)
        yield proc
    finally:
        proc.stop()


@dataclass
class Web:
    base_url: str
    proc: Proc
    access_log: Path

    def url(self, path: str) -> str:
        return self.base_url + path

    def served_pids(self, needle: str, wait: float = 0.0) -> set[str]:
        """The worker pids whose access-log lines hold `needle`. gunicorn logs a request after
        its response is sent, so a caller expecting a line waits up to `wait` s for it."""
        deadline = time.monotonic() + wait
        while True:
            pids = {
                line.split(" ", 1)[0]
                for line in self.access_log.read_text().splitlines()
                if needle in line
            }
            if pids or time.monotonic() >= deadline:
                return pids
            time.sleep(0.1)


def start_gunicorn(tmp_root: Path, name: str, workers: int, **env_overrides: str) -> Web:
    port = free_port()
    access_log = tmp_root / f"{name}-access.log"
    proc = start_proc(
        name,
        [sys.executable, "-m", "gunicorn", "--workers", str(workers),
         "--bind", f"127.0.0.1:{port}", "--access-logfile", str(access_log),
         "--access-logformat", '%(p)s "%(r)s" %(s)s', "--timeout", "60",
         "kitapp.wsgi:application"],
        kitapp_env(tmp_root, **env_overrides),
        tmp_root / f"{name}.log",
    )  # fmt: skip
    web = Web(base_url=f"http://127.0.0.1:{port}", proc=proc, access_log=access_log)

    def answers() -> bool:
        if proc.popen.poll() is not None:
            return True
        try:
            return requests.get(web.url("/ping"), timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_for(answers, START_TIMEOUT, f"gunicorn ({name}) to answer /ping")
    if proc.popen.poll() is not None:
        pytest.fail(f"gunicorn {name} exited early:\n{proc.log()[-3000:]}", pytrace=False)
    return web


@contextmanager
def gunicorn(tmp_root: Path, name: str, workers: int, **env_overrides: str) -> Iterator[Web]:
    server = start_gunicorn(tmp_root, name, workers, **env_overrides)
    try:
        yield server
    finally:
        server.proc.stop()


@pytest.fixture(scope="session")
def web(services: None, worker: Proc, tmp_root: Path) -> Iterator[Web]:
    with gunicorn(tmp_root, "gunicorn", workers=2) as server:
        yield server


@pytest.fixture(scope="session")
def other_web(services: None, worker: Proc, tmp_root: Path) -> Iterator[Web]:
    """A second, separate gunicorn (as on another web host): it never sees the submissions."""
    with gunicorn(tmp_root, "gunicorn-other", workers=1) as server:
        yield server


@pytest.fixture(scope="session")
def web_without_broker(services: None, tmp_root: Path) -> Iterator[Web]:
    """A gunicorn whose broker URL points at a closed port: the broker is 'down'."""
    dead = f"amqp://{AMQP_USER}:{AMQP_PASSWORD}@127.0.0.1:{free_port()}/{VHOST}"
    with gunicorn(tmp_root, "gunicorn-nobroker", workers=1, KITAPP_BROKER_URLS=dead) as server:
        yield server


def submit(web: Web, task: str, *args: Any) -> dict[str, Any]:
    response = requests.post(web.url("/api/jobs"), json={"task": task, "args": list(args)})
    assert response.status_code == 202, response.text
    return response.json()


def poll_until_done(
    web: Web, job_id: str, timeout: float = 60.0
) -> tuple[dict[str, Any], list[str]]:  # noqa: E501
    """Poll GET /api/jobs/<id> (a new connection each time) until SUCCESS or FAILURE."""
    states: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        response = requests.get(web.url(f"/api/jobs/{job_id}"), timeout=10)
        assert response.status_code == 200, response.text
        body = response.json()
        if not states or states[-1] != body["state"]:
            states.append(body["state"])
        if body["state"] in ("SUCCESS", "FAILURE"):
            return body, states
        assert time.monotonic() < deadline, f"job {job_id} still {body['state']} after {timeout}s"
        time.sleep(0.2)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
