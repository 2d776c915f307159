"""Result-store outage: /healthz goes 503 and comes back without restarting gunicorn.

Runs last (file order) because it stops and restarts Redis.
"""

from __future__ import annotations

import requests
from conftest import Web, poll_until_done, run_services_sh, submit, wait_for


def test_healthz_503_when_redis_down_then_200_after_restart(web: Web) -> None:
    pids_before = web.proc.popen.pid
    run_services_sh("stop-redis")
    try:
        response = requests.get(web.url("/healthz"), timeout=15)
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["broker"] == "ok"
        assert body["results"] == "unavailable"  # the details (addresses) go to the log only
        assert "Traceback" not in response.text

        submit_response = requests.post(web.url("/api/jobs"), json={"task": "noop"}, timeout=15)
        assert submit_response.status_code == 503, submit_response.text
        assert "result store unavailable" in submit_response.json()["error"]

        assert requests.get(web.url("/ping"), timeout=5).text == "pong"
    finally:
        run_services_sh("start-redis")

    def healthy() -> bool:
        return requests.get(web.url("/healthz"), timeout=15).status_code == 200

    wait_for(healthy, 30, "/healthz to return 200 after Redis restarted")
    assert requests.get(web.url("/healthz")).json() == {"broker": "ok", "results": "ok"}
    assert web.proc.popen.pid == pids_before and web.proc.popen.poll() is None
    # And the whole path works again: the worker reconnects to Redis too.
    job = submit(web, "noop")
    body, _ = poll_until_done(web, job["id"], timeout=60)
    assert body["state"] == "SUCCESS"
