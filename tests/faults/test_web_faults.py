"""gunicorn stops on the web host clients talk to: its nginx passes requests to the other web
hosts' gunicorn, so clients see no error and nothing accepted is lost."""

from __future__ import annotations

import time

import pytest
import requests
from app_processes import AppProcesses
from cluster_runs import wait_until


def test_gunicorn_stopped_on_the_clients_web_host_loses_no_request(
    hosts, kit_vars, web_url, web_hosts, web_host_name, new_batch, report
) -> None:
    if len(web_hosts) < 2:
        pytest.skip("one web host: no other gunicorn to pass requests to")
    processes = AppProcesses(hosts[web_host_name], kit_vars[web_host_name])
    gunicorn = processes.service("gunicorn")

    batch = new_batch(seconds=1)
    batch.submit(10)
    fault_at = time.monotonic()
    processes.stop(gunicorn)
    try:
        assert processes.state(gunicorn)[0] != "RUNNING"
        batch.submit(20)  # every one through the stopped host's nginx
        pings = [requests.get(f"{web_url}/ping", timeout=10).status_code for _ in range(20)]
    finally:
        processes.start(gunicorn)
    wait_until(lambda: processes.state(gunicorn)[0] == "RUNNING", 60, "gunicorn to run again")
    recovered = time.monotonic() - fault_at
    outcome = batch.settle(
        report,
        f"gunicorn on {web_host_name} stopped, clients still on its nginx",
        fault_at=fault_at,
        recovery_seconds=recovered,
        note="nginx passes each request to the other web hosts' gunicorn over TCP",
        timeout=120,
    )
    assert pings == [200] * 20  # and, by settle(), no 502 or other error, even once
    assert batch.refused == 0
    assert outcome.submitted == 30
