"""Provisioning time: a warm `ansible-playbook site.yml`, with and without the kit's SSH settings.

The kit's ansible.cfg turns on pipelining and SSH ControlPersist. The comparison run turns
both off through environment overrides (ANSIBLE_PIPELINING=False, ANSIBLE_SSH_ARGS without
ControlMaster/ControlPersist); the inventory's own SSH options (host keys) still apply. The
cold first-provision time comes from tests/results/phases.txt when a cluster test or `make up`
wrote it.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from cluster import ANSIBLE_ENV, ROOT
from report import cold_provision_seconds, parse_phases, parse_recap

WITHOUT_PIPELINING = {
    "ANSIBLE_PIPELINING": "False",
    "ANSIBLE_SSH_ARGS": "-o ControlMaster=no -o ControlPersist=no -o LogLevel=ERROR",
}
PHASES_FILE = ROOT / "tests" / "results" / "phases.txt"


def cold_from_phases(path: Path = PHASES_FILE) -> dict[str, Any]:
    if not path.exists():
        return {"cold_seconds": None, "cold_source": f"{path} missing"}
    return {
        "cold_seconds": cold_provision_seconds(parse_phases(path.read_text())),
        "cold_source": f"{path.relative_to(ROOT)} (written {time.ctime(path.stat().st_mtime)})",
    }


def timed_site_run(
    inventory: Path,
    log: Path,
    overrides: dict[str, str],
    timeout: float,
    playbook: str = "site.yml",
) -> dict[str, Any]:
    env = {**os.environ, **ANSIBLE_ENV, **overrides}
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.run(
            ["ansible-playbook", "-i", str(inventory), playbook],
            cwd=ROOT / "ansible",
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    seconds = time.perf_counter() - started
    recap = parse_recap(log.read_text())
    return {
        "seconds": seconds,
        "exit_code": proc.returncode,
        "changed": sum(host.get("changed", 0) for host in recap.values()),
        "failed": sum(
            host.get("failed", 0) + host.get("unreachable", 0) for host in recap.values()
        ),
        "overrides": overrides,
        "log": str(log),
    }
