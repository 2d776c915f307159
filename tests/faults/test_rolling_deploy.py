"""A release deployed, then rolled back, while clients keep using the front end: no request
fails and no job is lost.

The load is bounded and goes only to the cluster's own web host: one client submitting a
`ledger` job and reading a job back every 0.2 s. The deploy is the real deploy.yml (the
code-only release path) with a changed release (one more package) and a changed setting in the
app's environment, the rollback the real rollback.yml (the release only), then deploy.yml again
with the inventory's setting (the environment only); web hosts go one at a time behind their
health check and gunicorn reloads gracefully (HUP) or restarts for the environment; worker hosts
go a batch at a time (half of them), each batch stopping warm and answering a ping before the
next stops, so jobs keep completing throughout: the longest pause between two of the test's jobs
completing is measured from the workers' logs.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from datetime import datetime

import pytest
import requests
from app_processes import AppProcesses
from cluster_runs import (
    changed_per_host,
    changed_release_extra_vars,
    playbook,
    release_links,
)

LOAD_INTERVAL = 0.2
LOAD_MAX_REQUESTS = 20000  # a bound, far above what the deploy needs
# The longest the test's jobs may go without one completing while deploy.yml and rollback.yml
# run (jobs are sent every LOAD_INTERVAL s and take 0.2 s). Measured: 0.8 s with the workers in
# batches; 4.4 s with every worker host restarting at once (-e kit_worker_batch=100%), which
# this bound fails.
MAX_COMPLETION_GAP = 2.5
# A worker's log line for a job that ran to its end.
SUCCEEDED = re.compile(r"^\[(\S+ \S+): INFO/[^\]]+\] Task kitapp\.ledger\[([0-9a-f-]+)\] succeeded")


# A setting of the app's environment the test changes and puts back (harmless to its jobs), and
# its variable in the environment file (after celery_app_env_prefix; group_vars/all.yml).
CHANGED_SETTING = "kitapp_tutorial_sleep_seconds"
CHANGED_VARIABLE = "TUTORIAL_SLEEP_SECONDS"


def workers_started_with(hosts: dict, kit_vars: dict, worker_hosts: list[str]) -> set[str]:
    """The values of CHANGED_SETTING's environment variable the running workers started with."""
    values = set()
    for name in worker_hosts:
        hv = kit_vars[name]
        variable = hv["celery_app_env_prefix"] + CHANGED_VARIABLE
        processes = AppProcesses(hosts[name], hv)
        for worker in processes.workers():
            environ = hosts[name].check_output(
                f"tr '\\0' '\\n' < /proc/{processes.pid(worker)}/environ"
            )
            values |= {
                line.split("=", 1)[1]
                for line in environ.splitlines()
                if line.startswith(f"{variable}=")
            }
    return values


def timed_playbook(inventory: str, name: str, *args: str) -> float:
    start = time.monotonic()
    playbook(inventory, name, *args)
    return time.monotonic() - start


class Load:
    """Submits a job and reads one back every LOAD_INTERVAL s until stopped; counts answers."""

    def __init__(self, batch) -> None:
        self.batch = batch
        self.statuses: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _request(self, method: str, path: str, **kwargs) -> requests.Response | None:
        try:
            reply = requests.request(method, f"{self.batch.web_url}{path}", timeout=15, **kwargs)
        except requests.RequestException as exc:
            self.statuses[f"{method} error"] += 1
            self.failures.append(f"{method} {path}: {exc}")
            return None
        self.statuses[f"{method} {reply.status_code}"] += 1
        if reply.status_code >= 400:
            self.failures.append(f"{method} {path}: {reply.status_code} {reply.text[:200]}")
        return reply

    def _run(self) -> None:
        sent = 0
        while not self._stop.is_set() and sent < LOAD_MAX_REQUESTS:
            reply = self._request("POST", "/api/jobs", json={"task": "ledger", "args": [0.2]})
            if reply is not None and reply.status_code == 202:
                job_id = reply.json()["id"]
                self.batch.accepted.append(job_id)
                self._request("GET", f"/api/jobs/{job_id}")
            sent += 2
            time.sleep(LOAD_INTERVAL)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def completion_times(hosts: dict, kit_vars: dict, worker_hosts: list[str], ids: set[str]) -> list:
    """When each of the jobs `ids` completed, from the worker logs of every worker host (the
    containers share one clock), sorted."""
    times = []
    for name in worker_hosts:
        logs = [
            i["log"]
            for i in kit_vars[name]["app_processes_instances"]
            if i["role"] == "celery_worker" and i["state"] == "present"
        ]
        text = hosts[name].check_output(f"grep -h 'kitapp.ledger.*succeeded' {' '.join(logs)}")
        for line in text.splitlines():
            match = SUCCEEDED.match(line)
            if match and match.group(2) in ids:
                times.append(datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f"))
    return sorted(times)


def longest_gap(times: list) -> float:
    return max(
        ((b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)), default=0.0
    )


@pytest.fixture(scope="module")
def app_hosts(hosts: dict, worker_hosts: list[str], web_hosts: list[str]) -> dict:
    return {name: hosts[name] for name in worker_hosts + web_hosts}


def test_rolling_deploy_and_rollback_under_load_fail_no_request_lose_no_job_and_never_stop_work(
    inventory, hosts, app_hosts, kit_vars, worker_hosts, new_batch, report
) -> None:
    before = release_links(app_hosts, kit_vars, "current")
    setting = int(kit_vars[worker_hosts[0]][CHANGED_SETTING])
    # A changed release (the same app with one more package beside it) and a changed setting.
    new_extras = json.loads(changed_release_extra_vars([kit_vars[name] for name in app_hosts]))
    new_extras[CHANGED_SETTING] = setting + 1

    batch = new_batch(seconds=0.2)
    fault_at = time.monotonic()
    with Load(batch) as load:
        time.sleep(2)
        deploy_seconds = timed_playbook(inventory, "deploy.yml", "-e", json.dumps(new_extras))
        deployed = release_links(app_hosts, kit_vars, "current")
        deployed_setting = workers_started_with(hosts, kit_vars, worker_hosts)
        rollback_seconds = timed_playbook(inventory, "rollback.yml")
        rolled_back = release_links(app_hosts, kit_vars, "current")
        # Back to the inventory's setting: the environment changes, the release does not.
        restore_seconds = timed_playbook(inventory, "deploy.yml")
        restored = release_links(app_hosts, kit_vars, "current")
        restored_setting = workers_started_with(hosts, kit_vars, worker_hosts)
        time.sleep(2)
    outcome, ledger = batch.drain_to_outcome(
        "rolling deploy + rollback + environment change under HTTP load",
        fault_at=fault_at,
        recovery_seconds=None,
        timeout=180,
        note=f"deploy.yml (release and setting) took {deploy_seconds:.0f} s, rollback.yml "
        f"{rollback_seconds:.0f} s, deploy.yml (setting back) {restore_seconds:.0f} s; HTTP "
        f"answers: {dict(sorted(load.statuses.items()))}; redelivered = jobs a worker had "
        "prefetched but not started when it stopped warm (each ran once)",
    )
    gap = longest_gap(completion_times(hosts, kit_vars, worker_hosts, set(batch.accepted)))
    outcome.note += f"; longest pause between two jobs completing: {gap:.1f} s"
    report(outcome)

    assert all(deployed[name] != before[name] for name in app_hosts), (before, deployed)
    assert deployed_setting == {str(setting + 1)}, deployed_setting
    assert rolled_back == before
    assert release_links(app_hosts, kit_vars, "previous") == deployed
    assert restored == before
    assert restored_setting == {str(setting)}, restored_setting
    assert not load.failures, load.failures[:20]
    assert load.statuses["POST 202"] >= 10
    assert outcome.lost == 0, ledger
    # The workers rolled, for the releases and for the environment: some worker host took jobs
    # at every moment of the three runs.
    assert gap <= MAX_COMPLETION_GAP, f"jobs stopped completing for {gap:.1f} s"

    # Back to what the inventory defines, release and environment: a further run changes nothing.
    changed = changed_per_host(playbook(inventory, "deploy.yml"))
    assert set(app_hosts) <= set(changed) and not any(changed.values()), changed
    assert release_links(app_hosts, kit_vars, "current") == before
