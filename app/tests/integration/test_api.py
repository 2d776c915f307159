"""The HTTP API against a real broker, result store, worker and 2-process gunicorn."""

from __future__ import annotations

import os
import platform
import socket
import uuid

import pytest
import requests
from conftest import Web, poll_until_done, submit


def assert_json_error(response: requests.Response, status: int, contains: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert contains in body["error"], body
    assert "Traceback" not in response.text


def test_ping(web: Web) -> None:
    response = requests.get(web.url("/ping"))
    assert response.status_code == 200
    assert response.text == "pong"


def test_healthz_ok(web: Web) -> None:
    response = requests.get(web.url("/healthz"))
    assert response.status_code == 200, response.text
    assert response.json() == {"broker": "ok", "results": "ok"}


def test_noop_job_result_readable_from_another_gunicorn(web: Web, other_web: Web) -> None:
    job = submit(web, "noop")
    assert job["state"] == "PENDING"
    assert job["task"] == "noop"
    assert job["url"] == f"/api/jobs/{job['id']}"
    # Polled only through the other gunicorn, which never saw the submission: the result and
    # the job record come from the shared result store, not from the submitting process.
    body, _ = poll_until_done(other_web, job["id"])
    assert body["state"] == "SUCCESS"
    assert body["result"]["hostname"] == socket.gethostname()
    assert body["result"]["worker"].startswith("kitapp-it-")
    assert body["date_done"] and body["submitted_at"]
    assert other_web.served_pids(f"GET /api/jobs/{job['id']}", wait=10)
    assert other_web.served_pids("POST /api/jobs") == set()  # after the polls' lines are in


def test_location_header(web: Web) -> None:
    response = requests.post(web.url("/api/jobs"), json={"task": "noop"})
    assert response.status_code == 202
    assert response.headers["Location"] == f"/api/jobs/{response.json()['id']}"


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("taskPrintOSName", os.name),
        ("taskPrintSystem", platform.system()),
        ("taskPrintSystemRelease", platform.release()),
    ],
)
def test_tutorial_tasks_report_started_then_success(web: Web, task: str, expected: str) -> None:
    job = submit(web, task)
    body, states = poll_until_done(web, job["id"])
    assert body["state"] == "SUCCESS", body
    assert "STARTED" in states, states  # task_track_started (the task sleeps 1 s)
    assert body["result"]["value"] == expected
    assert body["result"]["hostname"] == socket.gethostname()
    assert body["result"]["worker"].startswith("kitapp-it-")
    assert body["task"] == task


def test_sleep_with_kwargs(web: Web) -> None:
    response = requests.post(
        web.url("/api/jobs"), json={"task": "sleep", "kwargs": {"seconds": 0.2}}
    )
    assert response.status_code == 202, response.text
    body, _ = poll_until_done(web, response.json()["id"])
    assert body["state"] == "SUCCESS"
    assert body["result"]["slept"] == 0.2


def test_recent_jobs_list(web: Web) -> None:
    ids = [submit(web, "noop")["id"] for _ in range(3)]
    response = requests.get(web.url("/api/jobs?limit=50"))
    assert response.status_code == 200
    listed = [job["id"] for job in response.json()["jobs"]]
    assert listed[:3] == list(reversed(ids))
    first = response.json()["jobs"][0]
    assert {"id", "task", "state", "submitted_at"} <= set(first)
    assert len(requests.get(web.url("/api/jobs?limit=2")).json()["jobs"]) == 2


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"{not json", 400, "request body is not valid JSON"),
        (b"", 400, "request body is not valid JSON"),
        (b"\xff\xfe", 400, "request body is not valid JSON"),
        (b"[1, 2]", 400, "request body must be a JSON object"),
        (b'"noop"', 400, "request body must be a JSON object"),
        (b'{"task": "rm -rf"}', 422, "unknown task 'rm -rf'"),
        (b'{"task": "celery.chord_unlock"}', 422, "unknown task"),
        (b'{"task": "sleep", "args": ["ten"]}', 422, "must be a number, got string"),
        (b'{"task": "sleep", "args": [601]}', 422, "before the task soft time limit"),
        (b'{"task": "sleep", "args": [1, 2]}', 422, "takes 1 argument(s) but 2 were given"),
        (b'{"task": "noop", "kwargs": {"x": 1}}', 422, "unexpected keyword argument(s): x"),
        (b'{"task": "noop", "args": {"a": 1}}', 422, "'args' must be an array"),
        (b'{"task": "noop", "kwargs": [1]}', 422, "'kwargs' must be an object"),
        (b'{"task": "download", "args": [7]}', 422, "must be a string, got integer"),
    ],
)
def test_bad_job_requests(web: Web, data: bytes, status: int, message: str) -> None:
    response = requests.post(
        web.url("/api/jobs"), data=data, headers={"Content-Type": "application/json"}
    )
    assert_json_error(response, status, message)


def test_body_over_limit_is_413(web: Web) -> None:
    body = b'{"task": "download", "args": ["http://example.org/' + b"a" * 5000 + b'"]}'
    response = requests.post(web.url("/api/jobs"), data=body)
    assert_json_error(response, 413, "request body is larger than the limit of 4096 bytes")


def test_unknown_and_malformed_job_ids(web: Web) -> None:
    unknown = uuid.uuid4()
    assert_json_error(requests.get(web.url(f"/api/jobs/{unknown}")), 404, "unknown job id")
    assert_json_error(requests.get(web.url("/api/jobs/not-a-uuid")), 404, "malformed job id")


def test_wrong_method_and_unknown_path(web: Web) -> None:
    response = requests.delete(web.url("/api/jobs"))
    assert_json_error(response, 405, "not allowed")
    assert "POST" in response.headers["Allow"]
    assert_json_error(requests.put(web.url("/ping")), 405, "")
    assert_json_error(requests.get(web.url("/no/such/path")), 404, "not found")


def test_bad_limit(web: Web) -> None:
    assert_json_error(requests.get(web.url("/api/jobs?limit=0")), 400, "limit must be")
    assert_json_error(requests.get(web.url("/api/jobs?limit=abc")), 400, "limit must be")


def test_html_page(web: Web) -> None:
    response = requests.get(web.url("/"))
    assert response.status_code == 200
    html = response.text
    for needle in ('id="download-form"', 'id="url"', 'id="submit"', 'id="jobs"'):
        assert needle in html
    assert requests.get(web.url("/static/app.js")).status_code == 200
    assert requests.get(web.url("/static/style.css")).status_code == 200


def test_broker_down_gives_503_not_500(web_without_broker: Web) -> None:
    response = requests.post(web_without_broker.url("/api/jobs"), json={"task": "noop"})
    assert response.status_code == 503, response.text
    assert "broker unavailable" in response.json()["error"]
    assert "Traceback" not in response.text
    health = requests.get(web_without_broker.url("/healthz"))
    assert health.status_code == 503
    assert health.json()["broker"] != "ok"
    assert health.json()["results"] == "ok"
