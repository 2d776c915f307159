#!/usr/bin/env python3
"""Ansible inventory of the local Vagrant cluster, read from vagrant/hosts.yml.

The machines, their groups and their cluster addresses are defined once, in vagrant/hosts.yml;
this script hands them to Ansible (and to the testinfra tests) in the same shape as the
production inventory. The provider (lxc, virtualbox, libvirt) is the one Vagrant created the
machines with, else $VAGRANT_DEFAULT_PROVIDER, else lxc. A `scale_out` machine (the bench's
doubled cluster) or a `blue_green` one (the broker-move drill's new brokers) is in the inventory
only once Vagrant has created it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
HOSTS_FILE = ROOT / "vagrant" / "hosts.yml"
MACHINES_DIR = ROOT / ".vagrant" / "machines"


def created_with(name: str) -> str | None:
    """The provider Vagrant created this machine with, if it did."""
    created = sorted(p.parent.name for p in (MACHINES_DIR / name).glob("*/id"))
    return created[0] if created else None


def provider_of(name: str) -> str:
    """The provider Vagrant created this machine with, else the default one."""
    return created_with(name) or os.environ.get("VAGRANT_DEFAULT_PROVIDER", "lxc")


def host_vars(machine: dict, networks: dict) -> dict:
    name = machine["name"]
    provider = provider_of(name)
    network = "lxc" if provider == "lxc" else "private"
    address = machine["address"][network]
    return {
        # The machine running Vagrant (and Ansible, and the tests), as the cluster sees it.
        "vagrant_host_address": networks[network]["gateway"],
        "ansible_host": address,
        "ansible_user": "vagrant",
        "ansible_ssh_private_key_file": str(MACHINES_DIR / name / provider / "private_key"),
        "cluster_address": address,
        "vagrant_provider": provider,
    }


def on_demand(machine: dict) -> bool:
    """Not part of the default cluster: started only when named."""
    return bool(machine.get("scale_out") or machine.get("blue_green"))


def inventory() -> dict:
    cluster = yaml.safe_load(HOSTS_FILE.read_text())
    groups: dict[str, dict] = {}
    hostvars: dict[str, dict] = {}
    for machine in cluster["machines"]:
        if on_demand(machine) and created_with(machine["name"]) is None:
            continue
        hostvars[machine["name"]] = host_vars(machine, cluster["networks"])
        for group in machine["groups"]:
            groups.setdefault(group, {"hosts": []})["hosts"].append(machine["name"])
    return {**groups, "_meta": {"hostvars": hostvars}}


def main(argv: list[str], make_inventory: Callable[[], dict] = inventory) -> int:
    """Ansible's inventory script protocol (--list, --host) for make_inventory's hosts."""
    if len(argv) > 1 and argv[1] == "--host":
        print(json.dumps({}))
        return 0
    print(json.dumps(make_inventory(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
