"""celery beat: runs on the beat hosts, nowhere else; with RedBeat, one of them sends."""

from __future__ import annotations

import time

from app_processes import AppProcesses
from cluster_runs import beat_heartbeat_sends, hosts_in

testinfra_hosts = ["ansible://celery_workers"]


def beat_state(host, hv: dict) -> str:
    return AppProcesses(host, hv).state(AppProcesses(host, hv).service("beat"))[0]


def test_beat_runs_on_the_beat_hosts_only(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    with host.sudo():
        state = beat_state(host, hv)
    assert (state == "RUNNING") == ("celery_beat" in hv["groups"]), state


def test_beat_runs_on_every_beat_host_and_on_one_with_the_file_scheduler(
    hosts, kit_vars, worker_hosts
) -> None:
    running = [
        name for name in worker_hosts if beat_state(hosts[name], kit_vars[name]) == "RUNNING"
    ]
    beat_hosts = hosts_in(kit_vars, "celery_beat")
    if kit_vars[beat_hosts[0]]["celery_beat_scheduler"] == "file":
        assert running == beat_hosts and len(running) == 1, running
    else:
        assert running == beat_hosts, running


def test_beat_sends_its_periodic_task_from_exactly_one_host(hosts, kit_vars) -> None:
    """The deployment's beat sends the heartbeat; with RedBeat every beat host runs beat, and only
    the lock's holder sends: over a period, the sends come from one host's beat log."""
    beat_hosts = hosts_in(kit_vars, "celery_beat")
    hv = kit_vars[beat_hosts[0]]
    period = int(hv["kitapp_beat_heartbeat_seconds"])
    assert period > 0, "kitapp_beat_heartbeat_seconds is 0: beat has nothing to send"

    def sends(name: str) -> int:
        return len(beat_heartbeat_sends(hosts[name], hv))

    before = {name: sends(name) for name in beat_hosts}
    time.sleep(period + 2)
    senders = [name for name in beat_hosts if sends(name) > before[name]]
    assert len(senders) == 1, f"sent from {senders or 'no host'} in {period + 2} s"
