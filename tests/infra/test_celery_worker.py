"""Celery workers: one process per queue group and number, unique node names, safe stop settings."""

from __future__ import annotations

import json

from app_processes import AppProcesses
from cluster_runs import app_command

testinfra_hosts = ["ansible://celery_workers"]


def stop_settings(host, hv: dict) -> dict:
    processes = AppProcesses(host, hv)
    with host.sudo():
        return {name: processes.stop_settings(name) for name in processes.workers()}


def celery(hv: dict) -> list[str]:
    """The site app's celery command, from its current release."""
    return [f"{hv['celery_app_base_dir']}/current/bin/celery", f"--app={hv['celery_app_module']}"]


def test_each_worker_stops_only_after_the_hard_time_limit(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    limit = int(hv["celery_worker_task_time_limit"])
    waits = {name: s.wait_seconds for name, s in stop_settings(host, hv).items()}
    assert waits and all(wait > limit for wait in waits.values()), (waits, limit)


def test_each_worker_is_stopped_warm_and_killed_as_a_group(host, kit_vars) -> None:
    """TERM to the main process only (warm shutdown); SIGKILL, if the wait runs out, to all."""
    settings = stop_settings(host, kit_vars[host.backend.get_hostname()])
    assert {
        (s.signal, s.signal_main_process_only, s.kill_whole_group) for s in settings.values()
    } == {("TERM", True, True)}


def test_workers_run_as_the_app_user_not_root(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    workers = host.process.filter(comm="celery")
    # Projects deployed beside the site's app (app.yml) run as their own users: none as root.
    site_workers = [p for p in workers if f"{hv['celery_app_base_dir']}/" in p.args]
    assert site_workers, "no celery process of the site's app"
    assert {p.user for p in site_workers} == {hv["celery_app_user"]}
    assert "root" not in {p.user for p in workers}


def test_every_worker_answers_ping_with_a_unique_node_name(host, kit_vars, worker_hosts) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    expected = sorted(
        f"{g['name']}-{n:02d}@{worker}"
        for worker in worker_hosts
        for g in kit_vars[worker]["celery_worker_groups"]
        for n in range(int(g.get("numprocs", 1)))
    )
    out = host.check_output(app_command(hv, *celery(hv), "inspect ping --json --timeout=5"))
    replies = json.loads(out.splitlines()[-1])
    assert sorted(replies) == expected


def test_each_worker_runs_its_groups_concurrency_and_prefetch(host, kit_vars) -> None:
    """Pool size and prefetch (concurrency x multiplier) come from the role's variables."""
    name = host.backend.get_hostname()
    hv = kit_vars[name]
    expected = {}
    for group in hv["celery_worker_groups"]:
        concurrency = int(group.get("concurrency", 1))
        multiplier = int(group.get("prefetch_multiplier", hv["celery_worker_prefetch_multiplier"]))
        for n in range(int(group.get("numprocs", 1))):
            expected[f"{group['name']}-{n:02d}@{name}"] = (concurrency, concurrency * multiplier)
    out = host.check_output(
        app_command(
            hv, *celery(hv), f"inspect stats --json --timeout=5 --destination={','.join(expected)}"
        )
    )
    stats = json.loads(out.splitlines()[-1])
    running = {
        node: (s["pool"]["max-concurrency"], s["prefetch_count"]) for node, s in stats.items()
    }
    assert running == expected


def test_the_watchdog_checks_every_worker_of_the_host_on_a_timer_and_restarts_none_that_answer(
    host, kit_vars
) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    unit = hv["celery_watchdog_unit"]
    timer = host.service(f"{unit}.timer")
    assert timer.is_running and timer.is_enabled
    with host.sudo():
        command = host.check_output(f"systemctl show --property=ExecStart --value {unit}.service")
        pids = AppProcesses(host, hv).pids()
        # One check now, as the timer runs it: every worker answers, none is restarted.
        since = host.check_output("date +%s")
        host.run_expect([0], f"systemctl start {unit}.service")
        log = host.check_output(f"journalctl --no-pager -u {unit}.service --since @{since}")
    for name in AppProcesses(host, hv).workers():
        assert f"={name}=" in command, (name, command)
    assert "restarting" not in log, log
    assert AppProcesses(host, hv).pids() == pids
