"""Operations the fault scenarios perform on the cluster's hosts (through testinfra, as root)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from app_processes import AppProcesses

ROOT = Path(__file__).resolve().parents[2]


def children(host, pid: int) -> list[int]:
    return [int(p) for p in host.run(f"pgrep -P {pid}").stdout.split()]


def pool_ready(processes: AppProcesses, name: str, concurrency: int, not_pid: int = 0) -> int:
    """The worker's main pid once it runs (with a pid other than not_pid) with a full pool."""
    state, pid = processes.state(name)
    if (
        state == "RUNNING"
        and pid
        and pid != not_pid
        and len(children(processes.host, pid)) >= concurrency
    ):
        return pid
    return 0


def lxc_container(name: str) -> str:
    hosts = yaml.safe_load((ROOT / "vagrant" / "hosts.yml").read_text())
    return f"{hosts['lxc_container_prefix']}{name}"


def lxc(*args: str) -> None:
    subprocess.run(["lxc-" + args[0], *args[1:]], check=True, capture_output=True, timeout=120)
