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
    """The default cluster's machines, or the bench's scale-out ones (not the drill's)."""
    cluster = yaml.safe_load((ROOT / "vagrant" / "hosts.yml").read_text())
    return [
        m
        for m in cluster["machines"]
        if bool(m.get("scale_out")) == scale_out and not m.get("blue_green")
    ]


def blue_green_machines() -> list[dict]:
    cluster = yaml.safe_load((ROOT / "vagrant" / "hosts.yml").read_text())
    return [m for m in cluster["machines"] if m.get("blue_green")]


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


def test_blue_green_brokers_are_left_out_until_created_then_form_their_own_group(
    hosts_py, tmp_path
):
    green = blue_green_machines()
    assert len(green) % 2 == 1 and len(green) >= 3  # a cluster of its own, for quorum queues
    inventory = hosts_py.inventory()
    assert not set(m["name"] for m in green) & set(inventory["_meta"]["hostvars"])
    for machine in green:
        (tmp_path / "machines" / machine["name"] / "lxc").mkdir(parents=True)
        (tmp_path / "machines" / machine["name"] / "lxc" / "id").write_text("x")
    inventory = hosts_py.inventory()
    assert inventory["rabbitmq_green"]["hosts"] == [m["name"] for m in green]
    assert not set(m["name"] for m in green) & set(inventory["rabbitmq"]["hosts"])
    every = machines(scale_out=False) + machines(scale_out=True) + green
    for key in ("name", "mac"):
        values = [m[key] for m in every]
        assert len(set(values)) == len(values), key
    addresses = [m["address"]["lxc"] for m in every]
    assert len(set(addresses)) == len(addresses)


def load_broker_move_script() -> ModuleType:
    path = ROOT / "tests" / "broker_move" / "vagrant" / "hosts.py"
    spec = importlib.util.spec_from_file_location("broker_move_hosts", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_broker_move_inventory_makes_the_new_brokers_the_sites_and_then_drops_the_old():
    full = {
        "rabbitmq": {"hosts": ["broker1", "broker2"]},
        "redis": {"hosts": ["broker1"]},
        "rabbitmq_green": {"hosts": ["green1"]},
        "celery_workers": {"hosts": ["worker1"]},
        "_meta": {"hostvars": {h: {} for h in ("broker1", "broker2", "green1", "worker1")}},
    }
    move = load_broker_move_script()
    moving = move.brokers_moved(full, done=False)
    assert moving["rabbitmq"]["hosts"] == ["green1"]
    assert moving["rabbitmq_old"]["hosts"] == ["broker1", "broker2"]
    assert "rabbitmq_green" not in moving
    done = move.brokers_moved(full, done=True)
    assert "rabbitmq_old" not in done
    assert sorted(done["_meta"]["hostvars"]) == ["broker1", "green1", "worker1"]  # redis stays
