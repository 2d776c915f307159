"""Celery workers: supervisor programs per queue group, unique node names, safe stop settings."""

from __future__ import annotations

import configparser
import json

testinfra_hosts = ["ansible://celery_workers"]


def program_config(host, hv: dict, group: dict) -> configparser.SectionProxy:
    path = f"/etc/supervisor/conf.d/{hv['celery_app_name']}-worker-{group['name']}.conf"
    parser = configparser.RawConfigParser()
    parser.read_string(host.file(path).content_string)
    return parser[f"program:{hv['celery_app_name']}-worker-{group['name']}"]


def test_each_worker_group_stops_only_after_the_hard_time_limit(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    stop_waits = {
        g["name"]: int(program_config(host, hv, g)["stopwaitsecs"])
        for g in hv["celery_worker_groups"]
    }
    limit = int(hv["celery_worker_task_time_limit"])
    assert all(wait > limit for wait in stop_waits.values()), (stop_waits, limit)


def test_each_worker_group_is_stopped_warm_and_killed_as_a_group(host, kit_vars) -> None:
    """TERM to the main process only (warm shutdown); SIGKILL, if the wait runs out, to all."""
    hv = kit_vars[host.backend.get_hostname()]
    settings = {
        g["name"]: (
            program_config(host, hv, g)["stopasgroup"],
            program_config(host, hv, g)["killasgroup"],
            program_config(host, hv, g)["stopsignal"],
        )
        for g in hv["celery_worker_groups"]
    }
    assert set(settings.values()) == {("false", "true", "TERM")}


def test_workers_run_as_the_app_user_not_root(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    workers = host.process.filter(comm="celery")
    assert workers, "no celery process"
    assert {p.user for p in workers} == {hv["celery_app_user"]}


def test_every_worker_answers_ping_with_a_unique_node_name(host, kit_vars, worker_hosts) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    expected = sorted(
        f"{g['name']}-{n:02d}@{worker}"
        for worker in worker_hosts
        for g in kit_vars[worker]["celery_worker_groups"]
        for n in range(int(g.get("numprocs", 1)))
    )
    out = host.check_output(
        f"sudo -u {hv['celery_app_user']} {hv['celery_app_base_dir']}/bin/with-env "
        f"{hv['celery_app_base_dir']}/current/bin/celery --app=kitapp.celery_app "
        "inspect ping --json --timeout=5"
    )
    replies = json.loads(out.splitlines()[-1])
    assert sorted(replies) == expected
