"""Changes applied by site.yml touch only what changed: one app process's configuration
restarts that process alone, and a rotated password reaches RabbitMQ and every app host.

These run the real playbook against the cluster and leave it working (the rotated password
stays: it is as good as the one it replaced).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml
from app_processes import AppProcesses
from cluster_runs import ANSIBLE_DIR, ANSIBLE_ENV, playbook, wait_for_final_state


def pids(processes: AppProcesses) -> dict[str, int]:
    """App process -> main pid, once every app process on the host runs."""
    deadline = time.monotonic() + 60
    while True:
        found = processes.pids()
        if all(found.values()) or time.monotonic() > deadline:
            return found
        time.sleep(1)


def noop_job_succeeds(web_url: str) -> bool:
    job = requests.post(f"{web_url}/api/jobs", json={"task": "noop"}, timeout=10).json()
    return wait_for_final_state(web_url, job["id"], timeout=90)["state"] == "SUCCESS"


@pytest.fixture(scope="module")
def beat_host_name(kit_vars: dict) -> str:
    return next(name for name, hv in kit_vars.items() if "celery_beat" in hv["groups"])


def test_one_program_changed_restarts_that_program_only(
    inventory, hosts, kit_vars, beat_host_name, web_url
) -> None:
    host = hosts[beat_host_name]
    processes = AppProcesses(host, kit_vars[beat_host_name])
    before = pids(processes)
    beat = processes.service("beat")
    assert beat in before and len(before) >= 2, before

    # Only the worker programs' configuration changes (their log level).
    playbook(
        inventory, "site.yml", "--limit", beat_host_name, "-e", "celery_worker_loglevel=WARNING"
    )
    changed = pids(processes)
    assert changed[beat] == before[beat], "beat was restarted by a change to the workers"
    workers = [name for name in before if name != beat]
    assert all(changed[name] != before[name] for name in workers), (before, changed)

    # Back as the inventory defines it: again the workers only.
    playbook(inventory, "site.yml", "--limit", beat_host_name)
    after = pids(processes)
    assert after[beat] == before[beat]
    assert noop_job_succeeds(web_url)


def vault_path(inventory: str) -> Path:
    return Path(inventory) / "group_vars" / "all" / "vault.yml"


def vault_command(*args: str, stdin: str | None = None) -> str:
    run = subprocess.run(
        ["ansible-vault", *args],
        input=stdin,
        cwd=ANSIBLE_DIR,
        env=ANSIBLE_ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    return run.stdout


def broker_password_hash(host, user: str) -> str:
    definitions = json.loads(host.check_output("rabbitmqctl --silent export_definitions -"))
    return next(u["password_hash"] for u in definitions["users"] if u["name"] == user)


def test_rotated_broker_password_reaches_rabbitmq_and_every_app_host(
    inventory, hosts, kit_vars, web_url
) -> None:
    broker_name = next(n for n, hv in kit_vars.items() if "rabbitmq" in hv["groups"])
    broker = hosts[broker_name]
    app_hosts = {
        name: hosts[name]
        for name, hv in kit_vars.items()
        if {"celery_workers", "web"} & set(hv["groups"])
    }
    user = kit_vars[broker_name]["kitapp_broker_user"]
    env_file = kit_vars[next(iter(app_hosts))]["celery_app_env_file"]
    hash_before = broker_password_hash(broker, user)
    env_before = {name: host.file(env_file).sha256sum for name, host in app_hosts.items()}

    # Rotate: a new value in the inventory's vault, then the ordinary site.yml.
    vault = vault_path(inventory)
    values = yaml.safe_load(vault_command("view", str(vault)))
    values["vault_kitapp_broker_password"] = secrets.token_urlsafe(24).replace("-", "x")
    vault_command(
        "encrypt",
        "--encrypt-vault-id",
        "default",
        "--output",
        str(vault),
        "-",
        stdin=yaml.safe_dump(values),
    )
    output = playbook(inventory, "site.yml")
    assert values["vault_kitapp_broker_password"] not in output

    assert broker_password_hash(broker, user) != hash_before
    assert all(host.file(env_file).sha256sum != env_before[n] for n, host in app_hosts.items())
    assert noop_job_succeeds(web_url)
