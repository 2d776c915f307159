"""Every web host's nginx lists the other web hosts' gunicorns in the same order on every run:
a list that changed order would rewrite site.conf and reload nginx on a run that changes nothing
(seen on the doubled cluster, 4 web hosts, before the expression stopped using a set)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
GROUP_VARS = ROOT / "ansible" / "group_vars" / "all.yml"

# Renders group_vars/all.yml's nginx_upstream_servers for web1 of a 5-web-host inventory.
RENDER = """
import json, sys
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
expression, web = json.loads(sys.argv[1]), json.loads(sys.argv[2])
hostvars = {name: {"cluster_address": "192.0.2.%d" % (30 + i)} for i, name in enumerate(web)}
variables = {
    "groups": {"web": web}, "hostvars": hostvars, "inventory_hostname": web[0],
    "gunicorn_socket": "/run/app/gunicorn.sock", "gunicorn_tcp_port": 8000,
}
print(json.dumps(Templar(loader=DataLoader(), variables=variables).template(
    trust_as_template(expression))))
"""


def render(seed: str) -> list[str]:
    expression = yaml.safe_load(GROUP_VARS.read_text())["nginx_upstream_servers"]
    web = ["web1", "web2", "web3", "web4", "web5"]
    out = subprocess.run(
        [sys.executable, "-c", RENDER, json.dumps(expression), json.dumps(web)],
        env={**os.environ, "PYTHONHASHSEED": seed},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_upstream_servers_keep_inventory_order_whatever_the_hash_seed() -> None:
    expected = [
        "unix:/run/app/gunicorn.sock",
        "192.0.2.31:8000",
        "192.0.2.32:8000",
        "192.0.2.33:8000",
        "192.0.2.34:8000",
    ]
    for seed in ("0", "1", "2", "3", "4", "5"):
        assert render(seed) == expected, f"PYTHONHASHSEED={seed}"
