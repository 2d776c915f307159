#!/usr/bin/env python3
"""The local cluster as a worker-only site: the Vagrant inventory without its web hosts.

The same machines, groups and variables as ansible/inventories/vagrant (its hosts.py and, by a
link, its group_vars), less the groups a site without a web front end does not have (web, and
monitoring, which the kit puts on a web host) and the hosts that were only in those. The folder
is named `vagrant` like the inventory it narrows, so the site's credentials (ansible/credentials/
vagrant: the CA, generated passwords) are the same ones. The cluster test's last phase deploys
site.yml with it and runs the testinfra modules of the roles such a site has.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

FULL_INVENTORY = Path(__file__).resolve().parents[3] / "ansible" / "inventories" / "vagrant"
WITHOUT_GROUPS = ("web", "monitoring")


def without_web_hosts(full: dict) -> dict:
    groups = {name: group for name, group in full.items() if name != "_meta"}
    kept = {name: group for name, group in groups.items() if name not in WITHOUT_GROUPS}
    hosts = {host for group in kept.values() for host in group["hosts"]}
    hostvars = {host: hv for host, hv in full["_meta"]["hostvars"].items() if host in hosts}
    return {**kept, "_meta": {"hostvars": hostvars}}


if __name__ == "__main__":
    vagrant = runpy.run_path(str(FULL_INVENTORY / "hosts.py"))
    sys.exit(vagrant["main"](sys.argv, lambda: without_web_hosts(vagrant["inventory"]())))
