"""Releases: a deploy of changed code makes a new release and switches `current` on every app
host (web hosts one at a time behind their health check); `rollback.yml` switches back.

Runs the real playbooks against the cluster, then leaves it as it found it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import requests
import testinfra

ROOT = Path(__file__).resolve().parents[2]


def playbook(inventory: str, name: str, *args: str) -> None:
    run = subprocess.run(
        ["ansible-playbook", "-i", inventory, name, *args],
        cwd=ROOT / "ansible",
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible" / "ansible.cfg")},
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, f"{name} failed:\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}"


@pytest.fixture(scope="module")
def app_hosts(inventory: str, worker_hosts: list[str], web_hosts: list[str]) -> dict:
    return {
        name: testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory}", sudo=True)
        for name in worker_hosts + web_hosts
    }


def links(app_hosts: dict, kit_vars: dict, link: str) -> dict[str, str]:
    return {
        name: host.file(f"{kit_vars[name]['celery_app_base_dir']}/{link}").linked_to
        for name, host in app_hosts.items()
    }


def noop_job_succeeds(web_url: str) -> bool:
    job = requests.post(f"{web_url}/api/jobs", json={"task": "noop"}, timeout=10).json()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = requests.get(f"{web_url}/api/jobs/{job['id']}", timeout=10).json()["state"]
        if state in ("SUCCESS", "FAILURE"):
            return state == "SUCCESS"
        time.sleep(0.5)
    return False


def test_deploy_makes_a_new_release_and_rollback_returns_to_the_previous(
    inventory, app_hosts, kit_vars, web_url
) -> None:
    before = links(app_hosts, kit_vars, "current")

    # A changed release: the same app with one more package beside it (extra-vars apply to
    # every host, so each gets the union of the hosts' extra packages plus the new one).
    extras = {p for name in app_hosts for p in kit_vars[name]["celery_app_extra_packages"]}
    new_extras = json.dumps({"celery_app_extra_packages": sorted(extras | {"six==1.16.0"})})
    playbook(inventory, "site.yml", "--limit", "celery_workers:web", "-e", new_extras)
    deployed = links(app_hosts, kit_vars, "current")
    assert all(deployed[name] != before[name] for name in app_hosts), (before, deployed)
    assert links(app_hosts, kit_vars, "previous") == before
    assert noop_job_succeeds(web_url)

    playbook(inventory, "rollback.yml")
    assert links(app_hosts, kit_vars, "current") == before
    assert links(app_hosts, kit_vars, "previous") == deployed
    assert noop_job_succeeds(web_url)

    # Back to the deployment as the inventory defines it: nothing to change.
    playbook(inventory, "site.yml", "--limit", "celery_workers:web")
    assert links(app_hosts, kit_vars, "current") == before
