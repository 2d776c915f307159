"""Provisioning scale (BENCH_SCALE=1, run last): warm site.yml on the default cluster and on
twice the hosts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import provision
import yaml
from cluster import ROOT

from phases.common import timed_site_yml

if TYPE_CHECKING:
    from run import Bench

# lxc-net's address reservations, written by vagrant/host-setup.sh from vagrant/hosts.yml.
DHCP_RESERVATIONS = Path("/etc/lxc/celerykit-dhcp-hosts.conf")


def run(bench: Bench) -> dict[str, Any]:
    """Warm site.yml on the default cluster, then on twice the hosts (the scale_out machines of
    vagrant/hosts.yml, started here and left running: `make down` removes them)."""
    machines = yaml.safe_load((ROOT / "vagrant" / "hosts.yml").read_text())["machines"]
    extra = [m["name"] for m in machines if m.get("scale_out")]
    default = [m["name"] for m in machines if not m.get("scale_out")]
    if sorted(bench.kit_vars) != sorted(default):
        raise RuntimeError(
            f"the inventory must be the default cluster ({', '.join(default)}) to start with; "
            f"it is {', '.join(sorted(bench.kit_vars))}"
        )
    reserved = DHCP_RESERVATIONS.read_text() if DHCP_RESERVATIONS.exists() else ""
    unreserved = [m["mac"] for m in machines if m.get("scale_out") and m["mac"] not in reserved]
    if os.environ.get("VAGRANT_DEFAULT_PROVIDER", "lxc") == "lxc" and unreserved:
        raise RuntimeError(
            f"{DHCP_RESERVATIONS} has no address for the scale_out machines ({len(unreserved)} "
            "MACs missing): run `make down host up` (host-setup restarts LXC networking, so "
            "only with the cluster down)"
        )
    out: dict[str, Any] = {"hosts_default": len(default), "hosts_doubled": len(default + extra)}

    out["warm_default"] = timed_site_yml(bench, "scale", "warm_default", {})
    bench.say(f"vagrant up --no-provision {' '.join(extra)}", "control node")
    started = time.perf_counter()
    subprocess.run(
        ["vagrant", "up", "--no-provision", *extra], cwd=ROOT, check=True, stdout=sys.stderr
    )
    out["vagrant_up_seconds"] = time.perf_counter() - started
    for key in ("scale_out_first_run", "warm_doubled"):
        out[key] = timed_site_yml(bench, "scale", key, {})
    batched = provision.serial_plays(ROOT / "ansible" / "site.yml")
    out["serial_plays"] = batched
    for key in ("warm_default", "scale_out_first_run", "warm_doubled"):
        out[key]["serial_seconds"] = provision.serial_seconds(out[key], batched)
    return out
