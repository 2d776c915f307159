"""A task that kills its worker every time is dead-lettered, not dropped, alerted on, replayed.

The `poison` job kills the pool process running it until the ledger marks its id cured. Each
death gives its message back to the quorum queue (late ack, reject on worker lost), which counts
the delivery; past the task queues' delivery limit the broker's policy dead-letters it (at least
once: it leaves the task queue only once the dead-letter queue has it). ansible/dead-letters.yml
lists it, and once the "fix" is out (cured), replays it: it then runs once.
"""

from __future__ import annotations

import json
import time

import pytest
from cluster_runs import app_command, changed_per_host, playbook, wait_until
from ledger_batch import Outcome

# Generous: each death costs the worker a new pool process (and prefetched copies wait their turn).
DEAD_LETTER_TIMEOUT = 300


@pytest.fixture(scope="module")
def app_host(hosts, kit_vars, worker_hosts):
    name = worker_hosts[0]
    return hosts[name], kit_vars[name]


def dead_letters(host, hv: dict) -> list[dict]:
    base = hv["celery_app_base_dir"]
    out = host.run(
        app_command(
            hv,
            f"{base}/current/bin/python",
            f"{base}/bin/celery-dead-letters",
            "list",
            f"--queue={hv['celery_app_dead_letter_queue']}",
            f"--ca-file={hv['celery_app_broker_ca_file'] if hv['celery_app_broker_tls'] else ''}",
        )
    )
    assert out.rc == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def deaths(hosts, names: list[str], logs: str, job_id: str) -> int:
    """How many pool processes the job killed, from the worker logs of every worker host."""
    total = 0
    for name in names:
        out = hosts[name].run(f"cat {logs} | grep -c -F 'poison {job_id}: killing'")
        total += int(out.stdout.strip() or 0)
    return total


def task_queue_delivery_limit(hv: dict) -> int:
    (policy,) = [p for p in hv["rabbitmq_policies"] if "dead-letter-exchange" in p["tags"]]
    return int(policy["tags"]["delivery-limit"])


def test_task_killing_its_worker_every_time_is_dead_lettered_not_lost_and_replayed(
    app_host, hosts, worker_hosts, kit_vars, inventory, read_ledger, report, alerts
) -> None:
    host, hv = app_host
    assert hv["kitapp_queue_type"] == "quorum", "delivery limits are a quorum-queue feature"
    limit = task_queue_delivery_limit(hv)
    base = hv["celery_app_base_dir"]
    logs = f"{hv['celery_app_log_dir']}/{hv['celery_app_name']}-worker-*.log"

    sent = host.run(
        app_command(
            hv,
            f"{base}/current/bin/celery",
            f"--app={hv['celery_app_module']}",
            "call",
            "kitapp.poison",
        )
    )
    assert sent.rc == 0, sent.stderr
    job_id = sent.stdout.strip().splitlines()[-1]
    started = time.monotonic()

    row = wait_until(
        lambda: next((r for r in dead_letters(host, hv) if r["id"] == job_id), None),
        DEAD_LETTER_TIMEOUT,
        f"the poison job {job_id} in {hv['celery_app_dead_letter_queue']}",
        interval=3,
    )
    dead_lettered_after = time.monotonic() - started
    assert row["task"] == "kitapp.poison"
    assert row["reason"] == "delivery_limit"
    assert row["queue"] == hv["kitapp_default_queue"]
    assert row["count"] == 1
    kills = deaths(hosts, worker_hosts, logs, job_id)
    assert kills > limit, f"the job was dead-lettered after {kills} deaths (limit {limit})"
    assert read_ledger([job_id])["executions"][job_id] == 0  # it never ran to its end
    alerted = alerts.wait_firing("KitDeadLetters", 120, queue=hv["celery_app_dead_letter_queue"])

    # The fix is out: the job is cured, and the operator replays it.
    cured = host.run(
        f"echo {job_id} | " + app_command(hv, f"{base}/current/bin/kitapp-ledger", "--cure")
    )
    assert cured.rc == 0, cured.stderr
    before = {r["id"] for r in dead_letters(host, hv)}
    output = playbook(inventory, "dead-letters.yml", "-e", f"dead_letters_replay={job_id}")
    assert sum(changed_per_host(output).values()) == 1, output[-2000:]
    # Only the chosen one left the dead-letter queue.
    assert {r["id"] for r in dead_letters(host, hv)} == before - {job_id}

    wait_until(
        lambda: read_ledger([job_id])["executions"][job_id] >= 1,
        120,
        f"the replayed job {job_id} to run",
    )
    assert read_ledger([job_id])["executions"][job_id] == 1
    alerts.wait_cleared("KitDeadLetters", 120, queue=hv["celery_app_dead_letter_queue"])
    report(
        Outcome(
            scenario="poison task past the delivery limit, replayed",
            submitted=1,
            completed=1,
            lost=0,
            duplicated=0,
            redelivered=read_ledger([job_id])["redelivered"][job_id],
            recovery_seconds=None,
            drain_seconds=round(time.monotonic() - started, 1),
            note=f"dead-lettered after {kills} deaths in {dead_lettered_after:.0f} s; "
            f"KitDeadLetters fired {alerted:.0f} s later and cleared after the replay",
        )
    )
