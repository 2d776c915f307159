"""The download task refuses what it must never fetch: other schemes, credentials in URLs, and
private addresses outside its allow-list (cluster hosts included), on the deployed workers.

(A body over the size cap is refused too; that needs a large file on an allowed host and is
proven by app/tests/integration/test_download.py against a real worker.)
"""

from __future__ import annotations

import time

import pytest
import requests
from cluster_runs import wait_for_final_state


def wait_for_failure(web_url: str, job_id: str) -> str:
    job = wait_for_final_state(web_url, job_id)
    assert job["state"] == "FAILURE", job
    return job["error"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "scheme"),
        ("gopher://127.0.0.1:70/", "scheme"),
        ("http://169.254.169.254/latest/meta-data/", "not in KITAPP_DOWNLOAD_ALLOWED_NETWORKS"),
        ("http://127.0.0.1:15672/api/overview", "not in KITAPP_DOWNLOAD_ALLOWED_NETWORKS"),
        ("http://user:secret@example.invalid/", "user names or passwords"),
    ],
)
def test_download_refuses_other_schemes_and_private_addresses(web_url, url, reason) -> None:
    reply = requests.post(
        f"{web_url}/api/jobs", json={"task": "download", "args": [url]}, timeout=15
    )
    assert reply.status_code == 202, reply.text
    time.sleep(0.2)
    assert reason in wait_for_failure(web_url, reply.json()["id"])


def test_download_refuses_a_cluster_host_outside_the_allow_list(web_url, kit_vars) -> None:
    broker = next(hv for hv in kit_vars.values() if "rabbitmq" in hv["groups"])
    url = f"http://{broker['cluster_address']}:{broker['rabbitmq_management_port']}/api/overview"
    reply = requests.post(
        f"{web_url}/api/jobs", json={"task": "download", "args": [url]}, timeout=15
    )
    assert reply.status_code == 202, reply.text
    assert "not in KITAPP_DOWNLOAD_ALLOWED_NETWORKS" in wait_for_failure(
        web_url, reply.json()["id"]
    )
