"""Flower: reachable only through nginx, and only with the password from the vault."""

from __future__ import annotations

import requests


def flower_url(kit_vars: dict, web_host_name: str, web_url: str) -> str:
    return f"{web_url}/{kit_vars[web_host_name]['flower_url_prefix']}/"


def test_flower_refuses_anonymous_access(kit_vars, web_host_name, web_url) -> None:
    reply = requests.get(flower_url(kit_vars, web_host_name, web_url), timeout=10)
    assert reply.status_code == 401


def test_flower_refuses_a_wrong_password(kit_vars, web_host_name, web_url) -> None:
    user = kit_vars[web_host_name]["flower_user"]
    reply = requests.get(
        flower_url(kit_vars, web_host_name, web_url), auth=(user, "wrong"), timeout=10
    )
    assert reply.status_code == 401


def test_flower_shows_the_workers_with_the_password(
    kit_vars, kit_secrets, web_host_name, web_url, worker_hosts
) -> None:
    hv = kit_vars[web_host_name]
    password = kit_secrets["kit_flower_password"]
    reply = requests.get(
        f"{flower_url(kit_vars, web_host_name, web_url)}api/workers?refresh=1",
        auth=(hv["flower_user"], password),
        timeout=30,
    )
    assert reply.status_code == 200, reply.text[:300]
    assert sorted({name.split("@", 1)[1] for name in reply.json()}) == sorted(worker_hosts)


def test_flower_listens_on_loopback_only(web_host, kit_vars, web_host_name) -> None:
    hv = kit_vars[web_host_name]
    assert web_host.socket(f"tcp://{hv['flower_address']}:{hv['flower_port']}").is_listening
    assert not web_host.socket(f"tcp://0.0.0.0:{hv['flower_port']}").is_listening
