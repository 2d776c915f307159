#!/usr/bin/env python3
"""The local cluster during a blue/green move of its brokers (ansible/move-brokers.yml).

The Vagrant inventory (ansible/inventories/vagrant: its hosts.py and, by a link, its
group_vars) with the drill's new brokers (vagrant/hosts.yml's `blue_green` machines, group
rabbitmq_green) as the site's brokers, group rabbitmq, and the brokers they replace in group
rabbitmq_old: the inventory an operator writes for move-brokers.yml. With KIT_BROKER_MOVE_STAGE
set to `done`, the old brokers are out (a host that was in another group too, as the result
store's, stays in that one): the inventory of the site.yml run that ends the move. The folder
is named `vagrant` like the inventory it changes, so the site's credentials are the same ones.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

FULL_INVENTORY = Path(__file__).resolve().parents[3] / "ansible" / "inventories" / "vagrant"
STAGE = "KIT_BROKER_MOVE_STAGE"


def brokers_moved(full: dict, done: bool) -> dict:
    """The inventory with rabbitmq_green as rabbitmq; the old brokers in rabbitmq_old, or out."""
    groups = {name: dict(group) for name, group in full.items() if name != "_meta"}
    old = groups.pop("rabbitmq")
    groups["rabbitmq"] = groups.pop("rabbitmq_green", {"hosts": []})
    if not done:
        groups["rabbitmq_old"] = old
    hosts = {host for group in groups.values() for host in group["hosts"]}
    hostvars = {host: hv for host, hv in full["_meta"]["hostvars"].items() if host in hosts}
    return {**groups, "_meta": {"hostvars": hostvars}}


if __name__ == "__main__":
    vagrant = runpy.run_path(str(FULL_INVENTORY / "hosts.py"))
    done = os.environ.get(STAGE, "moving") == "done"
    sys.exit(vagrant["main"](sys.argv, lambda: brokers_moved(vagrant["inventory"](), done)))
