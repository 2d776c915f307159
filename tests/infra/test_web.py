"""The web front end: gunicorn under the process manager, on its unix socket (for its own nginx)
and on TCP at the cluster address (for the other web hosts' nginx); nginx balances over all."""

from __future__ import annotations

import re

import pytest
import requests
from cluster_runs import front_end_ca_bundle, front_end_url

testinfra_hosts = ["ansible://web"]


def test_gunicorn_listens_on_its_socket(host, kit_vars) -> None:
    socket = kit_vars[host.backend.get_hostname()]["gunicorn_socket"]
    with host.sudo():
        assert host.file(socket).is_socket
    assert host.socket(f"unix://{socket}").is_listening


def test_gunicorn_runs_its_workers_as_the_app_user(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    processes = [p for p in host.process.filter(user=hv["celery_app_user"]) if "gunicorn" in p.args]
    assert len(processes) == int(hv["gunicorn_workers"]) + 1  # master + workers


def test_gunicorn_answers_on_its_socket(host, kit_vars) -> None:
    socket = kit_vars[host.backend.get_hostname()]["gunicorn_socket"]
    with host.sudo():
        out = host.check_output(
            f'python3 -c "import http.client,socket;'
            f"s=socket.socket(socket.AF_UNIX);s.connect('{socket}');"
            f"c=http.client.HTTPConnection('localhost');c.sock=s;"
            f"c.request('GET','/ping');r=c.getresponse();print(r.status)\""
        )
    assert out == "200"


def test_nginx_is_running_enabled_and_listening(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    assert host.service("nginx").is_running
    assert host.service("nginx").is_enabled
    assert host.socket(f"tcp://0.0.0.0:{hv['nginx_listen_port']}").is_listening
    if hv["nginx_tls_enabled"]:
        assert host.socket(f"tcp://0.0.0.0:{hv['nginx_tls_port']}").is_listening


def get_from_front_end(hv: dict, path: str) -> requests.Response:
    """GET from this web host's nginx as a client does (HTTPS verified against its CA)."""
    verify = front_end_ca_bundle(hv) or True
    return requests.get(f"{front_end_url(hv)}{path}", timeout=10, verify=verify)


def test_healthz_through_nginx_reports_broker_and_results_ok(host, kit_vars) -> None:
    reply = get_from_front_end(kit_vars[host.backend.get_hostname()], "/healthz")
    assert (reply.status_code, reply.json()) == (200, {"broker": "ok", "results": "ok"})


def test_nginx_serves_static_files_itself_not_gunicorn(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    gunicorn_log = f"{hv['celery_app_log_dir']}/{hv['celery_app_name']}-gunicorn.log"
    path = f"{hv['nginx_static_url']}style.css"
    with host.sudo():
        packaged = host.file(f"{hv['celery_app_base_dir']}/current/static/style.css").content_string
        seen_before = host.run(f"grep -c 'GET {path}' {gunicorn_log}").stdout.strip()
    reply = get_from_front_end(hv, path)
    assert reply.status_code == 200
    assert reply.text == packaged
    assert "max-age=" in reply.headers.get("Cache-Control", "")
    with host.sudo():
        assert host.run(f"grep -c 'GET {path}' {gunicorn_log}").stdout.strip() == seen_before


def test_gunicorn_listens_on_tcp_for_the_other_web_hosts(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    assert host.socket(f"tcp://{hv['gunicorn_tcp_address']}:{hv['gunicorn_tcp_port']}").is_listening


def test_nginx_upstream_lists_every_web_host(host, kit_vars) -> None:
    me = host.backend.get_hostname()
    hv = kit_vars[me]
    peers = [
        f"{v['cluster_address']}:{v['gunicorn_tcp_port']}"
        for name, v in kit_vars.items()
        if "web" in v["groups"] and name != me
    ]
    with host.sudo():
        config = host.check_output("nginx -T 2>/dev/null")
    upstreams = re.findall(r"^\s*upstream\s+\S+\s*\{(.*?)\}", config, flags=re.M | re.S)
    servers = [
        re.match(r"\s*server\s+(\S+)", line).group(1)
        for block in upstreams
        for line in block.splitlines()
        if line.strip()
    ]
    assert sorted(servers) == sorted([f"unix:{hv['gunicorn_socket']}", *peers])


def test_another_web_host_gets_answers_from_this_gunicorn_over_tcp(host, kit_vars, hosts) -> None:
    me = host.backend.get_hostname()
    hv = kit_vars[me]
    others = [n for n, v in kit_vars.items() if "web" in v["groups"] and n != me]
    if not others:
        pytest.skip("one web host: no peer to ask")
    url = f"http://{hv['cluster_address']}:{hv['gunicorn_tcp_port']}/ping"
    fetch = f"import urllib.request as u; print(u.urlopen('{url}', timeout=10).status)"
    assert hosts[others[0]].check_output(f'python3 -c "{fetch}"') == "200"


def test_only_web_hosts_reach_gunicorn_over_tcp(host, hosts, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    outsider = next(n for n, v in kit_vars.items() if "web" not in v["groups"])
    probe = (
        'python3 -c "import socket; socket.create_connection('
        f"('{hv['cluster_address']}', {hv['gunicorn_tcp_port']}), timeout=3)\""
    )
    assert hosts[outsider].run(probe).rc != 0, f"{outsider} reached gunicorn over TCP"


def test_password_files_hash_with_the_configured_rounds_readable_by_nginx_only(
    host, kit_vars
) -> None:
    """nginx checks the hash on every request to a password-protected location (Prometheus
    scrapes Flower's /metrics through one): its cost is the rounds the role sets."""
    hv = kit_vars[host.backend.get_hostname()]
    files = host.file("/etc/nginx").listdir()
    htpasswd = [
        f for f in files if f.startswith(f"{hv['nginx_site_name']}-") and f.endswith(".htpasswd")
    ]
    assert htpasswd, files
    for name in htpasswd:
        f = host.file(f"/etc/nginx/{name}")
        assert (f.user, f.group, f.mode) == ("root", hv["nginx_user"], 0o640)
        with host.sudo():
            user, digest = f.content_string.strip().split(":", 1)
        assert digest.startswith("$6$"), name
        # SHA-512 crypt writes rounds=N unless N is the default, 5000.
        found = re.match(r"\$6\$rounds=(\d+)\$", digest)
        assert (int(found.group(1)) if found else 5000) == int(hv["nginx_basic_auth_hash_rounds"])
