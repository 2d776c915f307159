"""celery beat: runs on the one beat host, nowhere else."""

from __future__ import annotations

from app_processes import AppProcesses

testinfra_hosts = ["ansible://celery_workers"]


def beat_state(host, hv: dict) -> str:
    return AppProcesses(host, hv).state(AppProcesses(host, hv).service("beat"))[0]


def test_beat_runs_on_the_beat_host_only(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    with host.sudo():
        state = beat_state(host, hv)
    assert (state == "RUNNING") == ("celery_beat" in hv["groups"]), state


def test_exactly_one_beat_process_runs_in_the_deployment(hosts, kit_vars, worker_hosts) -> None:
    running = [
        name for name in worker_hosts if beat_state(hosts[name], kit_vars[name]) == "RUNNING"
    ]
    assert len(running) == 1, running
