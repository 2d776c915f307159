"""download_to_dir against real HTTP(S) servers on loopback addresses (no other network).

DNS is a stub: the same stub answers the policy's resolver parameter and socket.getaddrinfo, so
a download that resolved a name a second time (as requests would, left to itself) would get the
stub's second answer and reach the trap server listening there.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import http.server
import importlib
import ipaddress
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from kitapp.downloads import (
    DownloadDeadlineError,
    DownloadError,
    DownloadResult,
    download_to_dir,
)
from kitapp.url_policy import Resolver

HOST_ONE = ipaddress.ip_network("127.0.0.1/32")  # the only loopback address allowed
BODY = b"the vetted content\n" * 64

Route = Callable[[http.server.BaseHTTPRequestHandler], None]


@dataclass
class Hit:
    path: str
    host_header: str | None


@dataclass
class Server:
    """A ThreadingHTTPServer on (address, port); routes map a path to a handler function."""

    address: str = "127.0.0.1"
    port: int = 0
    routes: dict[str, Route] = field(default_factory=dict)
    tls: ssl.SSLContext | None = None
    hits: list[Hit] = field(default_factory=list)
    connections: list[tuple[str, int]] = field(default_factory=list)
    sni_names: list[str | None] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_stop = server.stop  # set when the test ends: trickling routes give up

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server.hits.append(Hit(self.path, self.headers.get("Host")))
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                try:
                    route(self)
                except OSError:  # the client went away (a deadline shut its socket)
                    self.close_connection = True

        class HTTPServer(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request: Any, client_address: Any) -> bool:
                server.connections.append(client_address)
                return True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # failed TLS handshakes and dropped clients are expected in these tests

        self.httpd = HTTPServer((self.address, self.port), Handler)
        self.port = self.httpd.server_address[1]
        if self.tls is not None:

            def remember_sni(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
                server.sni_names.append(name)

            self.tls.sni_callback = remember_sni
            self.httpd.socket = self.tls.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(**kwargs: Any) -> Server:
        server = Server(**kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def serve(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Route:
    def route(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return route


def redirect(location: str) -> Route:
    return serve(b"", 302, {"Location": location})


class StubDns:
    """Answers each name from a list of answer lists, one per lookup (the last one repeats)."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> Iterable[str]:
        self.calls.append((host, port))
        lookups = self.answers[host]
        done = sum(1 for name, _ in self.calls if name == host) - 1
        return lookups[min(done, len(lookups) - 1)]

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make the system resolver (socket.getaddrinfo) answer the stub's names too."""
        real = socket.getaddrinfo

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(host, bytes):
                host = host.decode()
            if host not in self.answers:
                return real(host, port, *args, **kwargs)
            return [
                (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, int(port)))
                for a in self(host, int(port))
            ]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def fetch(
    url: str,
    directory: Path,
    resolver: Resolver,
    *,
    allowed: tuple[Any, ...] = (HOST_ONE,),
    deadline: float = 20,
    timeout: float = 5,
    verify: bool | str = True,
) -> DownloadResult:
    return download_to_dir(
        url,
        str(directory),
        max_bytes=1_000_000,
        timeout=timeout,
        deadline=deadline,
        allowed_networks=allowed,
        resolver=resolver,
        verify=verify,
    )


def server_and_trap(
    start: Callable[..., Server], routes: dict[str, Route]
) -> tuple[Server, Server]:
    """The real server on 127.0.0.1 and a trap on 127.0.0.2 (not allowed), on the same port."""
    for _ in range(20):
        server = start(routes=routes)
        try:
            trap = start(address="127.0.0.2", port=server.port, routes=routes)
        except OSError:  # that port is taken on 127.0.0.2; try another
            continue
        return server, trap
    raise RuntimeError("no port free on both 127.0.0.1 and 127.0.0.2")


# --- Pinning (DNS rebinding) -------------------------------------------------------------


def test_connection_goes_to_the_vetted_address_only(
    servers: Callable[..., Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, trap = server_and_trap(servers, {"/file": serve(BODY)})
    dns = StubDns({"rebind.test": [["127.0.0.1"], ["127.0.0.2"]]})
    dns.install(monkeypatch)

    result = fetch(f"http://rebind.test:{server.port}/file", tmp_path, dns)

    assert Path(result.path).read_bytes() == BODY
    assert result.sha256 == hashlib.sha256(BODY).hexdigest()
    assert dns.calls == [("rebind.test", server.port)]  # resolved once, by the policy
    assert trap.connections == [] and trap.hits == []
    assert server.hits == [Hit("/file", f"rebind.test:{server.port}")]  # Host: the name


def test_every_redirect_hop_is_checked_and_pinned(
    servers: Callable[..., Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    routes: dict[str, Route] = {"/file": serve(BODY)}
    server, trap = server_and_trap(servers, routes)
    routes["/start"] = redirect(f"http://hop.test:{server.port}/file")
    dns = StubDns(
        {"start.test": [["127.0.0.1"], ["127.0.0.2"]], "hop.test": [["127.0.0.1"], ["127.0.0.2"]]}
    )
    dns.install(monkeypatch)

    result = fetch(f"http://start.test:{server.port}/start", tmp_path, dns)

    assert Path(result.path).read_bytes() == BODY
    assert dns.calls == [("start.test", server.port), ("hop.test", server.port)]
    assert trap.connections == []
    assert server.hits == [
        Hit("/start", f"start.test:{server.port}"),
        Hit("/file", f"hop.test:{server.port}"),
    ]


@pytest.mark.parametrize("forbidden", ["127.0.0.2", "10.0.0.5", "169.254.169.254"])
def test_a_forbidden_first_answer_is_refused(
    servers: Callable[..., Server],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    forbidden: str,
) -> None:
    server = servers(routes={"/file": serve(BODY)})
    dns = StubDns({"rebind.test": [[forbidden], ["127.0.0.1"]]})
    dns.install(monkeypatch)

    with pytest.raises(DownloadError) as info:
        fetch(f"http://rebind.test:{server.port}/file", tmp_path, dns)

    assert str(info.value).startswith("host 'rebind.test' is not allowed: it resolves to a")
    assert forbidden not in str(info.value)
    assert dns.calls == [("rebind.test", server.port)]
    assert server.connections == []
    assert os.listdir(tmp_path) == []


def test_a_redirect_to_a_forbidden_address_is_refused(
    servers: Callable[..., Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    routes: dict[str, Route] = {}
    server, trap = server_and_trap(servers, routes)
    routes["/start"] = redirect(f"http://inside.test:{server.port}/secret")
    dns = StubDns({"start.test": [["127.0.0.1"]], "inside.test": [["127.0.0.2"]]})
    dns.install(monkeypatch)

    with pytest.raises(DownloadError, match="host 'inside.test' is not allowed") as info:
        fetch(f"http://start.test:{server.port}/start", tmp_path, dns)

    assert "127.0.0.2" not in str(info.value)
    assert [hit.path for hit in server.hits] == ["/start"]
    assert trap.connections == []


def test_the_next_vetted_address_is_tried_when_one_refuses_connections(
    servers: Callable[..., Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = servers(routes={"/file": serve(BODY)})  # nothing listens on 127.0.0.3
    dns = StubDns({"two.test": [["127.0.0.3", "127.0.0.1"]]})
    dns.install(monkeypatch)
    loopback = (ipaddress.ip_network("127.0.0.0/8"),)

    result = fetch(f"http://two.test:{server.port}/file", tmp_path, dns, allowed=loopback)

    assert Path(result.path).read_bytes() == BODY
    assert dns.calls == [("two.test", server.port)]


def test_connection_errors_name_the_url_not_the_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dns = StubDns({"closed.test": [["127.0.0.1"]]})
    dns.install(monkeypatch)
    url = f"http://closed.test:{port}/file"

    with pytest.raises(requests.ConnectionError) as info:  # the task retries these
        fetch(url, tmp_path, dns)

    assert str(info.value) == f"connection failed (Connection refused) for {url}"
    assert "127.0.0.1" not in str(info.value)


# --- TLS: SNI and the certificate check use the host name ---------------------------------


@dataclass
class Pki:
    ca_path: Path
    make_server_context: Callable[[list[str], list[str]], ssl.SSLContext]


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def certificate(
        subject: str, key: Any, issuer: Any, issuer_key: Any, ca: bool, sans: list[Any]
    ) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kitapp test CA")])
    ca_cert = certificate("kitapp test CA", ca_key, ca_name, ca_key, True, [])
    ca_path = tmp_path / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    def make_server_context(names: list[str], ips: list[str]) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        sans = [x509.DNSName(n) for n in names]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        cert = certificate(names[0], key, ca_name, ca_key, False, sans)
        stem = tmp_path / f"server-{len(list(tmp_path.glob('server-*')))}"
        cert_path, key_path = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        return context

    return Pki(ca_path, make_server_context)


def test_https_uses_the_host_name_for_sni_and_the_certificate(
    servers: Callable[..., Server], pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = servers(
        routes={"/file": serve(BODY)}, tls=pki.make_server_context(["pinned.test"], [])
    )
    dns = StubDns({"pinned.test": [["127.0.0.1"], ["127.0.0.2"]]})
    dns.install(monkeypatch)
    downloads = tmp_path / "downloads"

    result = fetch(
        f"https://pinned.test:{server.port}/file", downloads, dns, verify=str(pki.ca_path)
    )

    assert Path(result.path).read_bytes() == BODY
    assert server.sni_names == ["pinned.test"]
    assert server.hits == [Hit("/file", f"pinned.test:{server.port}")]
    assert dns.calls == [("pinned.test", server.port)]


def test_https_certificate_is_checked_against_the_host_name_not_the_address(
    servers: Callable[..., Server], pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Valid for the address the connection goes to, but not for the URL's host name.
    context = pki.make_server_context(["other.test"], ["127.0.0.1"])
    server = servers(routes={"/file": serve(BODY)}, tls=context)
    dns = StubDns({"pinned.test": [["127.0.0.1"]]})
    dns.install(monkeypatch)
    url = f"https://pinned.test:{server.port}/file"

    with pytest.raises(requests.exceptions.SSLError) as info:
        fetch(url, tmp_path / "downloads", dns, verify=str(pki.ca_path))

    assert str(info.value) == f"TLS handshake or certificate check failed for {url}"
    assert server.hits == []


# --- The deadline ------------------------------------------------------------------------


def trickle_body(length: int, interval: float, with_length: bool = True) -> Route:
    """A 200 whose body comes one byte per ``interval`` seconds (each read is quick)."""

    def route(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        if with_length:
            handler.send_header("Content-Length", str(length))
        else:
            handler.send_header("Connection", "close")  # the body ends at EOF
            handler.close_connection = True
        handler.end_headers()
        for _ in range(length):
            if handler.server_stop.is_set():  # type: ignore[attr-defined]
                return
            handler.wfile.write(b"x")
            time.sleep(interval)

    return route


def trickle_headers(interval: float) -> Route:
    """A status line, then a header line one byte per ``interval`` seconds."""

    def route(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(1000):
            if handler.server_stop.is_set():  # type: ignore[attr-defined]
                return
            handler.wfile.write(b"a")
            time.sleep(interval)

    return route


def slow_redirect(location: str, delay: float) -> Route:
    def route(handler: http.server.BaseHTTPRequestHandler) -> None:
        time.sleep(delay)
        redirect(location)(handler)

    return route


@pytest.mark.parametrize(
    "route",
    [
        pytest.param(trickle_body(10_000, 0.05), id="body-with-length"),
        pytest.param(trickle_body(10_000, 0.05, with_length=False), id="body-until-eof"),
        pytest.param(trickle_headers(0.05), id="headers"),
    ],
)
def test_deadline_stops_a_server_that_trickles(
    servers: Callable[..., Server], tmp_path: Path, route: Route
) -> None:
    server = servers(routes={"/slow": route})
    url = f"http://127.0.0.1:{server.port}/slow"
    started = time.monotonic()

    with pytest.raises(DownloadDeadlineError) as info:
        fetch(url, tmp_path, StubDns({}), deadline=1, timeout=5)

    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 2.5, elapsed  # not the 5 s read timeout, not the whole body
    assert isinstance(info.value, DownloadError)  # the task does not retry it
    assert str(info.value) == (
        f"{url} did not download within the deadline of 1 seconds (KITAPP_DOWNLOAD_DEADLINE)"
    )
    assert os.listdir(tmp_path) == []  # no partial file kept


def test_deadline_covers_all_redirect_hops_together(
    servers: Callable[..., Server], tmp_path: Path
) -> None:
    routes: dict[str, Route] = {"/file": serve(BODY)}
    server = servers(routes=routes)
    base = f"http://127.0.0.1:{server.port}"
    for hop in range(4):  # each hop is well within the deadline; all four are not
        routes[f"/hop{hop}"] = slow_redirect(f"{base}/hop{hop + 1}", 0.5)
    routes["/hop4"] = serve(BODY)
    started = time.monotonic()

    with pytest.raises(DownloadDeadlineError):
        fetch(f"{base}/hop0", tmp_path, StubDns({}), deadline=1.2, timeout=5)

    assert time.monotonic() - started < 2.5
    assert "/hop4" not in [hit.path for hit in server.hits]


def test_a_download_within_the_deadline_is_kept(
    servers: Callable[..., Server], tmp_path: Path
) -> None:
    server = servers(routes={"/slow": trickle_body(10, 0.05)})

    result = fetch(f"http://127.0.0.1:{server.port}/slow", tmp_path, StubDns({}), deadline=5)

    assert Path(result.path).read_bytes() == b"x" * 10
    assert result.bytes == 10


# --- The download task -------------------------------------------------------------------


@pytest.fixture
def tasks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """kitapp.tasks with settings for a download folder in tmp_path (no broker is contacted)."""
    monkeypatch.setenv("KITAPP_BROKER_URLS", "amqp://test:test@127.0.0.1:9/test")
    monkeypatch.setenv("KITAPP_RESULT_BACKEND", "redis://127.0.0.1:9/0")
    module = importlib.import_module("kitapp.tasks")
    settings = dataclasses.replace(
        module.settings,
        download_dir=str(tmp_path / "downloads"),
        download_allowed_networks=(HOST_ONE,),
        download_timeout=5,
        download_deadline=1,
        download_max_bytes=1000,
        download_max_age=3600,
        download_quota_bytes=3000,
    )
    monkeypatch.setattr(module, "settings", settings)
    return module


def test_task_prunes_the_folder_before_downloading(
    tasks: Any, servers: Callable[..., Server]
) -> None:
    server = servers(routes={"/file": serve(b"y" * 500)})
    folder = Path(tasks.settings.download_dir)
    folder.mkdir()
    now = time.time()

    def existing(tag: str, size: int, age: float) -> Path:
        path = folder / f"{tag * 32}-{tag}.bin"
        path.write_bytes(b"x" * size)
        os.utime(path, (now - age, now - age))
        return path

    expired = existing("a", 10, age=7200)  # older than download_max_age
    oldest = existing("b", 1000, age=300)  # removed to make room for up to 1000 bytes
    older = existing("c", 1000, age=200)
    newest = existing("d", 1000, age=100)
    other = folder / "README"
    other.write_text("not a download")

    result = tasks.download(f"http://127.0.0.1:{server.port}/file")

    assert Path(result["path"]).read_bytes() == b"y" * 500
    assert not expired.exists() and not oldest.exists()
    assert older.exists() and newest.exists() and other.exists()
    sizes = sum(p.stat().st_size for p in folder.iterdir() if p.name != "README")
    assert sizes <= tasks.settings.download_quota_bytes


def test_task_enforces_the_deadline_and_does_not_retry_it(
    tasks: Any, servers: Callable[..., Server]
) -> None:
    server = servers(routes={"/slow": trickle_body(900, 0.05)})
    started = time.monotonic()

    with pytest.raises(DownloadDeadlineError) as info:
        tasks.download(f"http://127.0.0.1:{server.port}/slow")

    assert time.monotonic() - started < 2.5  # download_deadline is 1 s; the read timeout 5 s
    assert not isinstance(info.value, tasks.download.autoretry_for)


def test_task_still_retries_transient_errors(tasks: Any) -> None:
    assert set(tasks.download.autoretry_for) == {
        requests.ConnectionError,
        requests.Timeout,
        tasks.TransientDownloadError,
    }
    assert tasks.download.max_retries == 3
