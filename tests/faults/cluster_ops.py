"""Operations the fault scenarios perform on the cluster's hosts (through testinfra, as root)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

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


def worker_processes(hv: dict) -> list[str]:
    """supervisorctl names (group:process) of every worker process on a host."""
    names = []
    for group in hv["celery_worker_groups"]:
        program = f"{hv['celery_app_name']}-worker-{group['name']}"
        names += [f"{program}:{program}-{i:02d}" for i in range(int(group.get("numprocs", 1)))]
    return names


def supervisor_state(host, process: str) -> tuple[str, int]:
    """(state, pid) of a supervisor process, e.g. ("RUNNING", 1234); pid 0 when not running."""
    out = host.run(f"supervisorctl status {process}").stdout.split()
    state = out[1] if len(out) > 1 else "UNKNOWN"
    pid = int(out[3].rstrip(",")) if state == "RUNNING" and len(out) > 3 else 0
    return state, pid


def children(host, pid: int) -> list[int]:
    out = host.run(f"pgrep -P {pid}").stdout.split()
    return [int(p) for p in out]


def pool_ready(host, process: str, concurrency: int, not_pid: int = 0) -> int:
    """The worker's main pid once it runs (with a pid other than not_pid) with a full pool."""
    state, pid = supervisor_state(host, process)
    if state == "RUNNING" and pid and pid != not_pid and len(children(host, pid)) >= concurrency:
        return pid
    return 0


def lxc_container(name: str) -> str:
    hosts = yaml.safe_load((ROOT / "vagrant" / "hosts.yml").read_text())
    return f"{hosts['lxc_container_prefix']}{name}"


def lxc(*args: str) -> None:
    subprocess.run(["lxc-" + args[0], *args[1:]], check=True, capture_output=True, timeout=120)
