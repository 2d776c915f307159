"""A second Celery project of another shape, deployed by the same roles beside the example app.

The tutorial's flat project (tests/sample_projects/tutorial_flat: CeleryApp.py, Tasks.py,
requirements.txt; its broker hard-coded to localhost; no web front end) goes on the worker hosts
with `ansible-playbook app.yml -e @tests/sample_projects/tutorial_flat.yml`. Its tasks, sent by
name from a web host, run on its own workers; the example app keeps working, untouched.
"""

from __future__ import annotations

import json
import re
import threading
import time

import requests
from app_processes import AppProcesses, stop_on_every_host
from cluster_runs import (
    assert_failed_naming,
    changed_per_host,
    playbook,
    run_playbook,
    wait_for_final_state,
    wait_until,
)
from sample_project import DEFINITION, broker_url, send_by_name

TASKS = {"Tasks.taskPrintOSName": "posix", "Tasks.taskPrintSystem": "Linux"}


def test_second_deploy_of_the_project_changes_nothing(second_project_deployed) -> None:
    changed = changed_per_host(second_project_deployed["second_run"])
    assert changed and set(changed.values()) == {0}, changed


def test_deploy_reports_the_tutorials_early_ack_and_missing_confirms_by_name(
    second_project_deployed,
) -> None:
    """The tutorial acks on receipt and publishes unconfirmed: the deploy says so, naming the
    setting and the tasks, and deploys it (warnings are not refusals by default)."""
    out = second_project_deployed["first_run"]
    assert "task_acks_late=False" in out
    assert "WARNING early_ack: " in out
    assert "early: Tasks.taskPrintOSName, Tasks.taskPrintSystem" in out
    assert "WARNING no_publisher_confirms: " in out
    assert "results_never_expire" not in out  # rpc:// results live in the caller's reply queue


def test_strict_reliability_refuses_the_tutorial_on_every_worker_host_and_changes_nothing(
    second_project_deployed, inventory: str, worker_hosts
) -> None:
    run = run_playbook(
        inventory, "app.yml", "-e", f"@{DEFINITION}", "-e", "celery_app_reliability_strict=true"
    )
    assert_failed_naming(run, "reliability warnings: early_ack, no_publisher_confirms")
    failed = dict(re.findall(r"^(\S+)\s+:.*\sfailed=(\d+)", run.stdout, re.MULTILINE))
    assert {failed[name] for name in worker_hosts} == {"1"}, failed  # none of them switched


def test_strict_reliability_deploys_once_the_site_accepts_each_warning(
    second_project_deployed, inventory: str
) -> None:
    accepted = '{"celery_app_reliability_strict": true, "celery_app_reliability_accepted": '
    accepted += '["early_ack", "no_publisher_confirms"]}'
    run = run_playbook(inventory, "app.yml", "-e", f"@{DEFINITION}", "-e", accepted)
    assert run.returncode == 0, run.stdout[-3000:]
    changed = changed_per_host(run.stdout)
    assert changed and set(changed.values()) == {0}, changed


def test_project_workers_run_as_its_own_user_from_its_own_release(
    second_project_deployed, hosts, worker_hosts, second_project_vars
) -> None:
    for name in worker_hosts:
        pv = second_project_vars[name]
        processes = AppProcesses(hosts[name], pv)
        assert [processes.state(w)[0] for w in processes.workers()] == ["RUNNING"], name
        command = f"{pv['celery_app_base_dir']}/current/bin/celery"
        lines = hosts[name].check_output("ps -eo user:32=,args=").splitlines()
        owners = {line.split(None, 1)[0] for line in lines if command in line}
        assert owners == {pv["celery_app_user"]}, (name, owners)
        assert hosts[name].file(f"{pv['celery_app_base_dir']}/current/app/CeleryApp.py").exists
        env = hosts[name].file(pv["celery_app_env_file"])  # the app reads it, root writes it
        assert (env.user, env.group, env.mode) == ("root", pv["celery_app_user"], 0o640)


def test_project_has_its_own_vhost_and_its_user_no_other(
    second_project_deployed, hosts, kit_vars, second_project
) -> None:
    broker = next(n for n, hv in kit_vars.items() if "rabbitmq" in hv["groups"])
    user, vhost = (
        second_project["celery_app_broker_user"],
        second_project["celery_app_broker_vhost"],
    )
    out = hosts[broker].check_output(f"rabbitmqctl --quiet list_user_permissions {user}")
    vhosts = [line.split("\t")[0] for line in out.splitlines()[1:] if line.strip()]
    assert vhosts == [vhost]
    example_vhost = kit_vars[broker]["kitapp_broker_vhost"]
    users_there = hosts[broker].check_output(
        f"rabbitmqctl --quiet list_permissions -p {example_vhost}"
    )
    assert user not in [line.split("\t")[0] for line in users_there.splitlines()]


def test_project_tasks_sent_by_name_from_a_web_host_run_on_its_workers(
    second_project_deployed,
    hosts,
    kit_vars,
    worker_hosts,
    web_host_name,
    second_project,
    second_project_vars,
) -> None:
    """Celery's send_task by the tutorial's names, from the web host (which has no copy of the
    project's code), through the project's own vhost; results come back over RabbitMQ (rpc)."""
    url = broker_url(hosts[worker_hosts[0]], second_project_vars[worker_hosts[0]])
    queue = second_project["celery_worker_groups"][0]["queues"][0]
    calls = {name: [] for name in TASKS}
    results = send_by_name(hosts[web_host_name], kit_vars[web_host_name], url, queue, calls)
    assert {n: r["value"] for n, r in results.items()} == TASKS
    assert {r["hostname"] for r in results.values()} <= set(worker_hosts)


def test_example_app_keeps_working_and_was_not_restarted(
    second_project_deployed, hosts, kit_vars, worker_hosts, web_url
) -> None:
    after = {name: AppProcesses(hosts[name], kit_vars[name]).pids() for name in worker_hosts}
    assert after == second_project_deployed["example_pids_before"]
    reply = requests.post(f"{web_url}/api/jobs", json={"task": "noop"}, timeout=10)
    assert reply.status_code == 202, reply.text
    assert wait_for_final_state(web_url, reply.json()["id"])["state"] == "SUCCESS"


# The kit's limits for the tutorial's one worker group, and a task far longer than both.
LIMITS = {"time_limit": 8, "soft_time_limit": 4}
LONG_TASK_SECONDS = 60


def test_task_longer_than_the_hard_limit_is_ended_by_the_limit_not_killed_at_stop(
    second_project_deployed,
    inventory: str,
    hosts,
    kit_vars,
    worker_hosts,
    web_host_name,
    second_project,
    second_project_vars,
) -> None:
    """The tutorial sets no time limit and acks early: a task running when its worker is stopped,
    longer than the stop wait, would be SIGKILLed and lost. The kit puts its limits on every
    group's command line, whatever the project says, and the stop wait above the hard limit: with
    the tutorial's sleep longer than both, a stop during the task waits for the soft limit to end
    it, the worker exits before its stop wait runs out, and the caller gets the limit's error."""
    group = {**second_project["celery_worker_groups"][0], **LIMITS}
    overrides = {
        "celery_worker_groups": [group],
        "celery_app_environment": {"SLEEP_SECONDS": str(LONG_TASK_SECONDS)},
    }
    playbook(inventory, "app.yml", "-e", f"@{DEFINITION}", "-e", json.dumps(overrides))
    try:
        workers, waits = {}, {}
        for name in worker_hosts:
            processes = AppProcesses(hosts[name], second_project_vars[name])
            (worker,) = processes.workers()
            workers[name] = (processes, worker)
            pid = wait_until(lambda p=processes, w=worker: p.pid(w), 60, f"{worker} running")
            args = hosts[name].check_output(f"ps -o args= -p {pid}")
            assert "--time-limit=8" in args and "--soft-time-limit=4" in args, args
            waits[name] = processes.stop_settings(worker).wait_seconds
            assert LIMITS["time_limit"] < waits[name] < LONG_TASK_SECONDS, waits

        url = broker_url(hosts[worker_hosts[0]], second_project_vars[worker_hosts[0]])
        queue = group["queues"][0]
        outcome: dict = {}
        started = time.monotonic()
        client = threading.Thread(
            target=lambda: outcome.update(
                send_by_name(
                    hosts[web_host_name],
                    kit_vars[web_host_name],
                    url,
                    queue,
                    {"Tasks.taskPrintOSName": []},
                    propagate=False,
                )
            )
        )
        logs = {n: f"{second_project_vars[n]['celery_app_log_dir']}/*.log" for n in worker_hosts}

        def runs_started() -> int:
            """How often a worker's log says the task started (the tutorial's task prints it)."""
            return sum(
                int(hosts[n].run(f"cat {logs[n]} | grep -c 'taskPrintOSName started'").stdout)
                for n in worker_hosts
            )

        before = runs_started()
        client.start()
        wait_until(lambda: runs_started() > before, 60, "the long task to start", interval=0.3)
        stops = stop_on_every_host({name: (p, [w]) for name, (p, w) in workers.items()})
        client.join(timeout=120)
        elapsed = time.monotonic() - started

        result = outcome["Tasks.taskPrintOSName"]
        assert result["state"] == "FAILURE", result
        assert "SoftTimeLimitExceeded" in result["result"], result
        assert elapsed < LONG_TASK_SECONDS, elapsed  # ended by the limit, not by its own end
        assert all(stops[name] < waits[name] for name in worker_hosts), (stops, waits)
    finally:
        for name in worker_hosts:
            processes, worker = workers.get(name, (None, None))
            if processes is not None and processes.state(worker)[0] != "RUNNING":
                processes.start(worker)
        playbook(inventory, "app.yml", "-e", f"@{DEFINITION}")


def test_task_no_worker_knows_is_dead_lettered_in_the_projects_vhost_not_dropped(
    second_project_deployed,
    inventory: str,
    hosts,
    kit_vars,
    worker_hosts,
    web_host_name,
    second_project,
    second_project_vars,
) -> None:
    """A task name the project's workers do not know is rejected by them (Celery: unregistered
    task, rejected without requeue): the tutorial alone would lose it. The kit's policy on the
    project's queues dead-letters it into the project's own dead-letter queue, and
    dead-letters.yml with the project's definition lists it, by name and reason."""
    vhost = second_project["celery_app_broker_vhost"]
    queue = second_project["celery_worker_groups"][0]["queues"][0]
    dead_letter_queue = second_project_vars[worker_hosts[0]]["celery_app_dead_letter_queue"]
    assert dead_letter_queue == f"{vhost}.dead-letters"
    broker = next(n for n, hv in kit_vars.items() if "rabbitmq" in hv["groups"])
    url = broker_url(hosts[worker_hosts[0]], second_project_vars[worker_hosts[0]])
    try:
        sent = send_by_name(
            hosts[web_host_name],
            kit_vars[web_host_name],
            url,
            queue,
            {"Tasks.noSuchTask": []},
            wait=False,
        )
        task_id = sent["Tasks.noSuchTask"]

        def listed() -> str:
            out = playbook(inventory, "dead-letters.yml", "-e", f"@{DEFINITION}")
            return out if task_id in out else ""

        out = wait_until(listed, 90, "the unknown task in the project's dead letters", interval=3)
        assert "Tasks.noSuchTask" in out and "rejected" in out, out[-2000:]
    finally:
        hosts[broker].run(f"rabbitmqctl --quiet purge_queue -p {vhost} {dead_letter_queue}")
