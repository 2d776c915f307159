"""Provisioning time: a warm `ansible-playbook site.yml`, with the kit's strategy and without it.

The kit's ansible.cfg runs Ansible's linear strategy through Mitogen (plugins/strategy/
kit_linear.py), with SSH pipelining and ControlPersist for any stock strategy. The comparison run
chooses Ansible's stock linear strategy (ANSIBLE_STRATEGY=linear): the same tasks, one SSH
pipelined module run per task and host; the inventory's own SSH options (host keys) apply. The
cold first-provision time comes from tests/results/phases.txt when a cluster test or `make up`
wrote it. Each run also records the seconds of each play and how busy this machine's CPUs were
(the containers share them, so a CPU-bound run cannot get faster by running hosts in parallel).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from cluster import ANSIBLE_ENV, ROOT
from report import (
    cold_provision_seconds,
    cpu_busy_fraction,
    parse_phases,
    parse_recap,
    play_header,
    play_seconds,
)

STOCK_STRATEGY = {"ANSIBLE_STRATEGY": "linear"}
PROC_STAT = Path("/proc/stat")  # this machine's CPU counters: the containers share its cores
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
    extra_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    env = {**os.environ, **ANSIBLE_ENV, **overrides}
    stat_before = PROC_STAT.read_text()
    started = time.perf_counter()
    plays: list[tuple[float, str]] = []
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["ansible-playbook", "-i", str(inventory), playbook, *extra_args],
            cwd=ROOT / "ansible",
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # The bound holds even when ansible-playbook prints nothing (a hung SSH connection).
        expired = threading.Event()
        watchdog = threading.Timer(timeout, lambda: (expired.set(), proc.kill()))
        watchdog.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                name = play_header(line)
                if name is not None:
                    plays.append((time.perf_counter() - started, name))
            proc.wait()
        finally:
            watchdog.cancel()
        if expired.is_set():
            raise TimeoutError(f"ansible-playbook {playbook} ran over {timeout:.0f}s; see {log}")
    seconds = time.perf_counter() - started
    recap = parse_recap(log.read_text())
    return {
        "seconds": seconds,
        "cpu_busy": cpu_busy_fraction(stat_before, PROC_STAT.read_text()),
        "play_seconds": play_seconds(plays, seconds),
        "exit_code": proc.returncode,
        "changed": sum(host.get("changed", 0) for host in recap.values()),
        "failed": sum(
            host.get("failed", 0) + host.get("unreachable", 0) for host in recap.values()
        ),
        "overrides": overrides,
        "log": str(log),
    }


def serial_plays(playbook: Path) -> list[str]:
    """Names of the playbook's plays that run their hosts in batches (`serial`)."""
    plays = yaml.safe_load(playbook.read_text()) or []
    return [play["name"] for play in plays if "serial" in play and "name" in play]


def serial_seconds(run: dict[str, Any], names: list[str]) -> float:
    """Seconds a timed run spent in the named (batched) plays."""
    return sum(seconds for play, seconds in run.get("play_seconds", {}).items() if play in names)
