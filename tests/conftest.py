"""Shared fixtures: the deployment's variables, resolved from the inventory in use.

Hosts, paths, ports, users and vhosts are defined once (role defaults + inventory group_vars);
`tests/resolve-vars.yml` resolves them with Ansible itself and the tests read the result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import testinfra
from cluster_runs import front_end_ca_bundle, front_end_url, hosts_in, resolve_vars

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INVENTORY = ROOT / "ansible" / "inventories" / "vagrant"


def inventory_path(config: pytest.Config) -> Path:
    option = config.getoption("ansible_inventory", default=None)
    return Path(option).resolve() if option else DEFAULT_INVENTORY


@pytest.fixture(scope="session")
def inventory(request: pytest.FixtureRequest) -> str:
    """Absolute path of the inventory under test (--ansible-inventory, else the Vagrant one)."""
    return str(inventory_path(request.config))


@pytest.fixture(scope="session")
def resolved(inventory: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    """(per-host non-secret variables, the deployment's secrets), resolved by Ansible."""
    folder = tmp_path_factory.mktemp("kit-vars")
    folder.chmod(0o700)
    out, secrets = folder / "kit-vars.json", folder / "kit-secrets.json"
    kit_vars = resolve_vars(inventory, out, "-e", f"kit_secrets_file={secrets}")
    return kit_vars, json.loads(secrets.read_text())


@pytest.fixture(scope="session")
def kit_vars(resolved: tuple[dict, dict]) -> dict:
    """Per inventory host: its groups, cluster address and the roles' resolved variables."""
    return resolved[0]


@pytest.fixture(scope="session")
def kit_secrets(resolved: tuple[dict, dict]) -> dict[str, str]:
    """The deployment's secrets by variable name (from the inventory's vault)."""
    return resolved[1]


@pytest.fixture(scope="session")
def worker_hosts(kit_vars: dict) -> list[str]:
    return hosts_in(kit_vars, "celery_workers")


@pytest.fixture(scope="session")
def web_hosts(kit_vars: dict) -> list[str]:
    return hosts_in(kit_vars, "web")


@pytest.fixture(scope="session")
def web_host_name(web_hosts: list[str]) -> str:
    return web_hosts[0]


@pytest.fixture(scope="session")
def web_ca_bundle(kit_vars: dict, web_host_name: str) -> str | None:
    """The CA the front end's certificate is verified with (None: the system's CAs)."""
    return front_end_ca_bundle(kit_vars[web_host_name])


@pytest.fixture(scope="session")
def web_url(kit_vars: dict, web_host_name: str, web_ca_bundle: str | None) -> Iterator[str]:
    """The front end as clients reach it: nginx on the first web host, over HTTPS when the site
    serves it. Every `requests` call of the session verifies its certificate against the CA
    that issued it (REQUESTS_CA_BUNDLE), never with verification off."""
    saved = os.environ.get("REQUESTS_CA_BUNDLE")
    if web_ca_bundle:
        os.environ["REQUESTS_CA_BUNDLE"] = web_ca_bundle
    yield front_end_url(kit_vars[web_host_name])
    if saved is None:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
    else:
        os.environ["REQUESTS_CA_BUNDLE"] = saved


@pytest.fixture(scope="session")
def web_host(inventory: str, web_host_name: str):
    return testinfra.get_host(f"ansible://{web_host_name}?ansible_inventory={inventory}")


@pytest.fixture(scope="session")
def hosts(inventory: str, kit_vars: dict) -> dict:
    """testinfra handles, as root, on every host of the inventory, by name."""
    return {
        name: testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory}", sudo=True)
        for name in kit_vars
    }
