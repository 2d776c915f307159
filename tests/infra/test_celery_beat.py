"""celery beat: one supervisor program on the one beat host, none elsewhere; its schedule runs."""

from __future__ import annotations

import testinfra

testinfra_hosts = ["ansible://celery_workers"]


def beat_program(kit_vars: dict, name: str) -> str:
    return f"{kit_vars[name]['celery_app_name']}-beat"


def test_beat_runs_on_the_beat_host_only(host, kit_vars) -> None:
    name = host.backend.get_hostname()
    with host.sudo():
        status = host.run(f"supervisorctl status {beat_program(kit_vars, name)}").stdout
    running = "RUNNING" in status
    assert running == ("celery_beat" in kit_vars[name]["groups"]), status


def test_exactly_one_beat_process_runs_in_the_deployment(inventory, kit_vars, worker_hosts) -> None:
    running = [
        name
        for name in worker_hosts
        if "RUNNING"
        in testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory}", sudo=True)
        .run(f"supervisorctl status {beat_program(kit_vars, name)}")
        .stdout
    ]
    assert len(running) == 1, running
