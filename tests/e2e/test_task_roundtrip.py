"""Work pushed through the whole path comes back from a worker, not from the caller.

HTTP -> nginx -> gunicorn -> RabbitMQ -> Celery worker -> Redis -> gunicorn -> HTTP, and the
tutorial's own client (Task_run.py's equivalent) run on the web host.
"""

from __future__ import annotations

import json

import pytest
import requests
from cluster_runs import app_command, wait_for_final_state

TUTORIAL_TASKS = ["taskPrintOSName", "taskPrintSystem", "taskPrintSystemRelease"]
EXPECTED_VALUES = {
    "taskPrintOSName": "posix",
    "taskPrintSystem": "Linux",
}


def test_tutorial_client_gets_each_result_from_a_worker(
    web_host, web_host_name, kit_vars, worker_hosts
) -> None:
    hv = kit_vars[web_host_name]
    command = app_command(
        hv, f"{hv['celery_app_base_dir']}/current/bin/kitapp-tutorial", "--json", "--timeout 120"
    )
    result = web_host.run(command)
    assert result.rc == 0, result.stdout + result.stderr
    results = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(results) == sorted(TUTORIAL_TASKS)
    assert {r["hostname"] for r in results.values()} <= set(worker_hosts)
    assert {name: results[name]["value"] for name in EXPECTED_VALUES} == EXPECTED_VALUES


@pytest.mark.parametrize("task", TUTORIAL_TASKS + ["noop"])
def test_job_submitted_over_http_completes_on_a_worker(web_url, worker_hosts, task) -> None:
    reply = requests.post(f"{web_url}/api/jobs", json={"task": task}, timeout=10)
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["id"]
    assert reply.headers["Location"].endswith(f"/api/jobs/{job_id}")

    job = wait_for_final_state(web_url, job_id)
    assert job["state"] == "SUCCESS", job
    assert job["result"]["hostname"] in worker_hosts


def test_job_is_pending_or_started_before_it_is_done(web_url) -> None:
    reply = requests.post(f"{web_url}/api/jobs", json={"task": "sleep", "args": [3]}, timeout=10)
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["id"]
    first = requests.get(f"{web_url}/api/jobs/{job_id}", timeout=10).json()
    assert first["state"] in ("PENDING", "STARTED")
    assert wait_for_final_state(web_url, job_id)["state"] == "SUCCESS"


def test_malformed_request_gets_a_4xx_with_a_message(web_url) -> None:
    reply = requests.post(
        f"{web_url}/api/jobs",
        data="{not json",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert reply.status_code == 400
    assert reply.json()["error"]


def test_unknown_job_id_is_404(web_url) -> None:
    reply = requests.get(f"{web_url}/api/jobs/00000000-0000-0000-0000-000000000000", timeout=10)
    assert reply.status_code == 404
    assert reply.json()["error"]
