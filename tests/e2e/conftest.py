"""End-to-end fixtures: the web front end's base URL and a testinfra handle on a web host."""

from __future__ import annotations

import pytest
import testinfra


@pytest.fixture(scope="session")
def web_host_name(web_hosts: list[str]) -> str:
    return web_hosts[0]


@pytest.fixture(scope="session")
def web_url(kit_vars: dict, web_host_name: str) -> str:
    hv = kit_vars[web_host_name]
    return f"http://{hv['cluster_address']}:{hv['nginx_listen_port']}"


@pytest.fixture(scope="session")
def web_host(inventory: str, web_host_name: str):
    return testinfra.get_host(f"ansible://{web_host_name}?ansible_inventory={inventory}")
