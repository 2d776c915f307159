"""Operations the fault scenarios perform on the cluster's hosts (through testinfra, as root)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from app_processes import AppProcesses

ROOT = Path(__file__).resolve().parents[2]


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 1.0
) -> Any:
    """Calls predicate until it returns a true value; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception as exc:  # a host that is still booting, ssh not yet back
            last_error = exc
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:g} s waiting for {what} (last error: {last_error})"
    )


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
