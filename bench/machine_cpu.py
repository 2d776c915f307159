"""CPU time of the cluster's containers, read on this machine (the LXC host), whose cores they
all share: which host's processes a task costs CPU on, whatever happens inside the containers.

LXC puts each container's processes in a cgroup named `lxc.payload.<container>`; its CPU
counter is cpuacct.usage (nanoseconds, cgroup v1) or cpu.stat's usage_usec (cgroup v2). With
another provider (VirtualBox, libvirt: their own kernels) there is none and the reading is {}.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from cluster import ROOT

CGROUP = Path("/sys/fs/cgroup")


def container_prefix() -> str:
    """The LXC container names' prefix, as the Vagrantfile builds them (vagrant/hosts.yml)."""
    return yaml.safe_load((ROOT / "vagrant" / "hosts.yml").read_text())["lxc_container_prefix"]


def read_usage(cgroup: Path = CGROUP, prefix: str | None = None) -> dict[str, float]:
    """{host: CPU seconds so far} of every running container of the cluster."""
    prefix = container_prefix() if prefix is None else prefix
    out: dict[str, float] = {}
    for usage in sorted(cgroup.glob(f"cpuacct/lxc.payload.{prefix}*/cpuacct.usage")):
        host = usage.parent.name.removeprefix(f"lxc.payload.{prefix}")
        out[host] = int(usage.read_text()) / 1e9
    for stat in sorted(cgroup.glob(f"lxc.payload.{prefix}*/cpu.stat")):
        host = stat.parent.name.removeprefix(f"lxc.payload.{prefix}")
        fields = dict(line.split() for line in stat.read_text().splitlines() if line.strip())
        out.setdefault(host, int(fields["usage_usec"]) / 1e6)
    return out


def usage_between(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each container used between two readings (containers in both only)."""
    return {host: after[host] - before[host] for host in sorted(after) if host in before}
