"""Hostile input to the deployed front end (nginx -> gunicorn): never a 5xx, never a stack trace.

The fuzzer builds requests from the API's own schema (kitapp.public_tasks: the task names and
their parameters) plus arbitrary JSON and bytes. Workers are paused while it runs and the queue
is purged afterwards, so nothing the fuzzer managed to submit is executed.
"""

from __future__ import annotations

import json

import pytest
import requests
from app_processes import AppProcesses
from cluster_runs import app_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kitapp.public_tasks import PUBLIC_TASKS

JSON = "application/json"

FUZZ = settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
OK_OR_CLIENT_ERROR = {200, 202, 400, 404, 405, 413, 415, 422}

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
task_names = st.sampled_from(sorted(PUBLIC_TASKS)) | st.text(max_size=40)
param_names = st.sampled_from(sorted({p.name for s in PUBLIC_TASKS.values() for p in s.params}))
job_bodies = st.fixed_dictionaries(
    {"task": task_names},
    optional={
        "args": st.lists(json_values, max_size=4) | json_values,
        "kwargs": st.dictionaries(param_names | st.text(max_size=10), json_values, max_size=3)
        | json_values,
        "extra": json_values,
    },
)


def assert_clean_answer(reply: requests.Response) -> None:
    assert reply.status_code in OK_OR_CLIENT_ERROR, (reply.status_code, reply.text[:500])
    assert "Traceback" not in reply.text
    assert 'File "' not in reply.text
    if reply.status_code >= 400 and reply.headers.get("Content-Type", "").startswith(
        "application/json"
    ):
        assert reply.json()["error"], reply.text


@pytest.fixture(scope="module")
def workers_paused(hosts, kit_vars, worker_hosts):
    """Workers stopped for the module; afterwards the queue is purged and they start again."""
    for name in worker_hosts:
        processes = AppProcesses(hosts[name], kit_vars[name])
        for process in processes.workers():
            processes.stop(process)
    yield
    hv = kit_vars[worker_hosts[0]]
    base = hv["celery_app_base_dir"]
    purge = hosts[worker_hosts[0]].run(
        app_command(
            hv,
            f"{base}/current/bin/celery",
            f"--app={hv['celery_app_module']}",
            "purge",
            "--force",
            f"--queues={hv['kitapp_default_queue']}",
        )
    )
    for name in worker_hosts:
        processes = AppProcesses(hosts[name], kit_vars[name])
        for process in processes.workers():
            processes.start(process)
    assert purge.rc == 0, purge.stdout + purge.stderr


@FUZZ
@given(body=job_bodies)
def test_fuzzed_job_requests_get_202_or_a_4xx_with_a_message(workers_paused, web_url, body) -> None:
    # json.dumps, not requests' json=: it also writes NaN and Infinity, which clients may send.
    reply = requests.post(
        f"{web_url}/api/jobs",
        data=json.dumps(body),
        headers={"Content-Type": "application/json"},
        timeout=15,
    )
    assert_clean_answer(reply)
    if reply.status_code == 202:
        assert body["task"] in PUBLIC_TASKS
    else:
        assert reply.status_code in (400, 413, 422), reply.text


@FUZZ
@given(raw=st.binary(max_size=2000) | json_values.map(lambda v: json.dumps(v).encode()))
def test_fuzzed_raw_bodies_never_cause_a_5xx(workers_paused, web_url, raw) -> None:
    reply = requests.post(
        f"{web_url}/api/jobs",
        data=raw,
        headers={"Content-Type": "application/json"},
        timeout=15,
    )
    assert_clean_answer(reply)


@FUZZ
@given(job_id=st.text(min_size=1, max_size=80), limit=st.text(max_size=12))
def test_fuzzed_job_ids_and_limits_never_cause_a_5xx(
    workers_paused, web_url, job_id, limit
) -> None:
    assert_clean_answer(
        requests.get(f"{web_url}/api/jobs/{requests.utils.quote(job_id, safe='')}", timeout=15)
    )
    assert_clean_answer(requests.get(f"{web_url}/api/jobs", params={"limit": limit}, timeout=15))


@pytest.mark.parametrize(
    ("body", "status", "content_type"),
    [
        (b"x" * (2 * 1024 * 1024), 413, JSON),  # far over every request size limit
        (b"{not json", 400, JSON),
        (json.dumps({"task": "rm -rf /"}).encode(), 422, JSON),
        (json.dumps({"task": "sleep", "args": [1] * 100000}).encode(), 413, JSON),
        # json.dumps writes Infinity, which is not JSON
        (json.dumps({"task": "sleep", "args": [1e308 * 10]}).encode(), 400, JSON),
        (json.dumps({"task": "download", "args": ["http://x/" + "a" * 5000]}).encode(), 422, JSON),
        (b'{"task": "sleep", "args": [' + b"9" * 400 + b"]}", 400, JSON),
        (b'{"task": "noop", "kwargs": ' + b'{"a": ' * 200 + b"1" + b"}" * 201, 400, JSON),
        # past the task soft time limit: the sleep would be killed, not finished
        (json.dumps({"task": "sleep", "args": [100000]}).encode(), 422, JSON),
        # what a cross-site HTML form can send without a preflight
        (json.dumps({"task": "noop"}).encode(), 415, "text/plain"),
        (b"task=noop", 415, "application/x-www-form-urlencoded"),
    ],
    ids=[
        "oversized-body",
        "bad-json",
        "unknown-task",
        "huge-args",
        "infinite-number",
        "long-url",
        "400-digit-integer",
        "deep-nesting",
        "sleep-past-the-soft-limit",
        "text-plain-body",
        "form-body",
    ],
)
def test_hostile_bodies_are_rejected_with_a_4xx(
    workers_paused, web_url, body, status, content_type
) -> None:
    reply = requests.post(
        f"{web_url}/api/jobs", data=body, headers={"Content-Type": content_type}, timeout=15
    )
    assert reply.status_code == status, reply.text[:300]
    assert "Traceback" not in reply.text
