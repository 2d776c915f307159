"""The broker and the result store go away mid-batch and come back: nothing accepted is lost.

With three RabbitMQ nodes the app's queue is a quorum queue: one node stopped leaves a majority,
so it keeps accepting and delivering; clients fail over to the other broker URLs.
"""

from __future__ import annotations

import json
import shlex
import time

import requests
from app_processes import AppProcesses
from cluster_runs import app_command, hosts_in, wait_until

DRAIN_TIMEOUT = 240

# Run on a web host as the app, with its environment: publishes kitapp.noop tasks the way the
# web does (publisher confirms on) until the broker refuses one or argv[1] are sent; prints
# "REFUSED <sent> <exception>" or "ACCEPTED <sent>".
FILL_QUEUE = """
import sys
from kitapp.celery_app import app
sent = 0
try:
    with app.producer_or_acquire() as producer:
        while sent < int(sys.argv[1]):
            app.send_task("kitapp.noop", producer=producer)
            sent += 1
    print("ACCEPTED", sent)
except Exception as exc:
    print("REFUSED", sent, type(exc).__name__)
"""


def rabbitmq_running_nodes(host) -> int:
    out = host.run("rabbitmqctl --formatter json cluster_status")
    if out.rc != 0:
        return 0
    return len(json.loads(out.stdout).get("running_nodes", []))


def healthz(web_url: str) -> int:
    try:
        return requests.get(f"{web_url}/healthz", timeout=10).status_code
    except requests.RequestException:
        return 0


def test_broker_node_stopped_mid_batch_loses_no_task(
    hosts, kit_vars, web_url, new_batch, report
) -> None:
    brokers = hosts_in(kit_vars, "rabbitmq")
    # The first broker is the first URL every client tries: the one they are connected to.
    victim, witness = hosts[brokers[0]], hosts[brokers[-1]]
    assert rabbitmq_running_nodes(witness) == len(brokers)

    batch = new_batch(seconds=1)
    batch.submit(20)
    publisher = batch.submit_in_background(40, interval=0.25)  # keeps publishing through it
    fault_at = time.monotonic()
    victim.run_expect([0], "systemctl stop rabbitmq-server")
    time.sleep(15)
    victim.run_expect([0], "systemctl start rabbitmq-server")
    wait_until(
        lambda: rabbitmq_running_nodes(witness) == len(brokers),
        180,
        f"{brokers[0]} to rejoin the cluster",
        interval=2,
    )
    recovered = time.monotonic() - fault_at
    publisher.join(timeout=300)
    outcome = batch.settle(
        report,
        f"RabbitMQ node {brokers[0]} stopped 15 s ({len(brokers)} nodes)",
        fault_at=fault_at,
        recovery_seconds=recovered,
        note="clients fail over to the other broker URLs; jobs a worker held unacknowledged "
        "over the dropped connection are redelivered (duplicates possible)",
        timeout=DRAIN_TIMEOUT,
    )
    assert outcome.submitted == 60


def test_result_store_restart_gives_503_then_recovers_without_a_restart(
    hosts, kit_vars, web_url, web_host_name, new_batch, report
) -> None:
    redis_host = next(n for n, hv in kit_vars.items() if "redis" in hv["groups"])
    store, web = hosts[redis_host], hosts[web_host_name]
    web_processes = AppProcesses(web, kit_vars[web_host_name])

    def gunicorn_pid() -> int:
        return web_processes.pid(web_processes.service("gunicorn"))

    gunicorn_before = gunicorn_pid()
    assert healthz(web_url) == 200

    batch = new_batch(seconds=1)
    batch.submit(20)
    fault_at = time.monotonic()
    store.run_expect([0], "systemctl stop redis-server")
    wait_until(lambda: healthz(web_url) == 503, 30, "/healthz to answer 503")
    refused = requests.post(f"{web_url}/api/jobs", json={"task": "noop"}, timeout=15)
    assert refused.status_code == 503, refused.text
    assert "result store" in refused.json()["error"]
    time.sleep(5)
    store.run_expect([0], "systemctl start redis-server")
    wait_until(lambda: healthz(web_url) == 200, 60, "/healthz to answer 200 again")
    recovered = time.monotonic() - fault_at
    batch.settle(
        report,
        f"Redis on {redis_host} stopped ~5 s",
        fault_at=fault_at,
        recovery_seconds=recovered,
        note="/healthz and new submissions answer 503 while it is down; workers' result and "
        "ledger writes retry; the same gunicorn serves again (no restart)",
        timeout=DRAIN_TIMEOUT,
    )
    assert gunicorn_pid() == gunicorn_before


def test_full_queue_refuses_new_jobs_with_503_and_loses_none_it_accepted(
    hosts, kit_vars, web_url, web_host_name, worker_hosts, new_batch, report
) -> None:
    hv = kit_vars[web_host_name]
    limit = int(hv["kitapp_queue_max_length"])
    workers = {name: AppProcesses(hosts[name], kit_vars[name]) for name in worker_hosts}
    for processes in workers.values():
        processes.stop(*processes.workers())
    try:
        batch = new_batch(seconds=0.2)
        batch.submit(10)  # accepted before the queue is full: each must run once
        fault_at = time.monotonic()
        base = hv["celery_app_base_dir"]
        fill = hosts[web_host_name].run(
            app_command(
                hv, f"{base}/current/bin/python", "-c", shlex.quote(FILL_QUEUE), str(limit * 2)
            )
        )
        assert fill.rc == 0, fill.stderr
        verdict, sent, *why = fill.stdout.split()
        assert verdict == "REFUSED", f"{sent} published past max-length {limit}: {fill.stdout}"
        # Full at about max-length: what the batch and the filler published, give or take beat's
        # heartbeats and a publish the quorum queue took while it reached the limit.
        assert abs(int(sent) + len(batch.accepted) - limit) <= 5, fill.stdout
        refused = requests.post(f"{web_url}/api/jobs", json={"task": "noop"}, timeout=15)
        assert refused.status_code == 503, refused.text
        assert "queue is full" in refused.json()["error"]
    finally:
        for processes in workers.values():
            processes.start(*processes.workers())
    outcome = batch.settle(
        report,
        f"app queue full ({limit} messages, reject-publish)",
        fault_at=fault_at,
        recovery_seconds=None,
        note="the broker nacks publishes past max-length; the web answers 503 and the jobs "
        "accepted before run once the workers are back",
        timeout=DRAIN_TIMEOUT,
    )
    assert outcome.submitted == 10
