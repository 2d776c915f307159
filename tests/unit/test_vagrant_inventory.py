"""The Vagrant inventory (ansible/inventories/vagrant/hosts.py) read from vagrant/hosts.yml."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "ansible" / "inventories" / "vagrant" / "hosts.py"


@pytest.fixture
def hosts_py(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("vagrant_hosts", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "MACHINES_DIR", tmp_path / "machines")
    monkeypatch.delenv("VAGRANT_DEFAULT_PROVIDER", raising=False)
    return module


def machines(scale_out: bool) -> list[dict]:
    cluster = yaml.safe_load((ROOT / "vagrant" / "hosts.yml").read_text())
    return [m for m in cluster["machines"] if bool(m.get("scale_out")) == scale_out]


def test_default_cluster_is_the_inventory_and_scale_out_machines_are_left_out(hosts_py):
    hostvars = hosts_py.inventory()["_meta"]["hostvars"]
    assert sorted(hostvars) == sorted(m["name"] for m in machines(scale_out=False))


def test_scale_out_machine_joins_its_groups_once_vagrant_created_it(hosts_py, tmp_path):
    machine = machines(scale_out=True)[0]
    (tmp_path / "machines" / machine["name"] / "lxc").mkdir(parents=True)
    (tmp_path / "machines" / machine["name"] / "lxc" / "id").write_text("x")
    inventory = hosts_py.inventory()
    for group in machine["groups"]:
        assert machine["name"] in inventory[group]["hosts"]
    assert (
        inventory["_meta"]["hostvars"][machine["name"]]["ansible_host"]
        == (machine["address"]["lxc"])
    )


def test_doubled_cluster_has_twice_the_hosts_and_an_odd_broker_count():
    everything = machines(scale_out=False) + machines(scale_out=True)
    assert len(everything) == 2 * len(machines(scale_out=False))
    brokers = [m for m in everything if "rabbitmq" in m["groups"]]
    assert len(brokers) % 2 == 1
    for key in ("name", "mac"):
        values = [m[key] for m in everything]
        assert len(set(values)) == len(values), key
    addresses = [m["address"]["lxc"] for m in everything]
    assert len(set(addresses)) == len(addresses)
