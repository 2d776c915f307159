"""End-to-end latency from the control node: POST /api/jobs, then GET until SUCCESS.

A light, steady load on the cluster's own web host: `rate` jobs per second for `seconds`
seconds (rate * seconds jobs in all), each polled every `poll` seconds until it is final or
`job_timeout` passes. The latency of a job is the time from sending its POST to receiving the
first GET that reports SUCCESS, so it is accurate to about one poll interval.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from remote.stats import percentile

_local = threading.local()


def _session() -> requests.Session:
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def one_job(base_url: str, task: str, poll: float, job_timeout: float) -> dict[str, Any]:
    session = _session()
    started = time.perf_counter()
    reply = session.post(f"{base_url}/api/jobs", json={"task": task}, timeout=10)
    if reply.status_code != 202:
        return {"error": f"POST answered {reply.status_code}: {reply.text[:200]}"}
    job_id = reply.json()["id"]
    deadline = started + job_timeout
    polls = 0
    while time.perf_counter() < deadline:
        state = session.get(f"{base_url}/api/jobs/{job_id}", timeout=10).json().get("state")
        polls += 1
        if state == "SUCCESS":
            return {"seconds": time.perf_counter() - started, "polls": polls}
        if state == "FAILURE":
            return {"error": f"job {job_id} failed"}
        time.sleep(poll)
    return {"error": f"job {job_id} not done after {job_timeout}s"}


def run(
    base_url: str,
    rate: float,
    seconds: float,
    poll: float = 0.02,
    job_timeout: float = 30,
    task: str = "noop",
) -> dict[str, Any]:
    count = max(1, int(rate * seconds))
    lag = 0.0
    with ThreadPoolExecutor(max_workers=32) as pool:
        futures = []
        start = time.perf_counter()
        for index in range(count):
            due = start + index / rate
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
            lag = max(lag, time.perf_counter() - due)
            futures.append(pool.submit(one_job, base_url, task, poll, job_timeout))
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result())
            except requests.RequestException as exc:
                outcomes.append({"error": f"{type(exc).__name__}: {exc}"})
    latencies = [o["seconds"] * 1000 for o in outcomes if "seconds" in o]
    errors = [o["error"] for o in outcomes if "error" in o]
    return {
        "url": base_url,
        "task": task,
        "rate_per_s": rate,
        "seconds": seconds,
        "poll_interval_ms": poll * 1000,
        "sent": count,
        "succeeded": len(latencies),
        "errors": errors[:10],
        "error_count": len(errors),
        "max_send_lag_ms": lag * 1000,
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
            "max": max(latencies) if latencies else None,
        },
    }
