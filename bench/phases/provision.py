"""Provisioning (BENCH_PROVISION=1): a warm site.yml with the kit's strategy (Mitogen), then with
Ansible's stock linear strategy; the cold first run from tests/results/phases.txt; then a
code-only release through deploy.yml (a changed release: one more package) while a client reads
the front end's /healthz every 0.2 s, and deploy.yml again back to the inventory's release."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import provision  # bench/provision.py (absolute import: not this module)
import requests
from cluster_runs import CHANGED_RELEASE_PACKAGE, changed_release_extra_vars

from phases.common import timed_site_yml

if TYPE_CHECKING:
    from run import Bench

PROBE_INTERVAL = 0.2


class HealthProbe:
    """GET /healthz every PROBE_INTERVAL s in a thread; counts the answers that were not 200."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/healthz"
        self.sent = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sent += 1
            try:
                reply = requests.get(self.url, timeout=10)
                if reply.status_code != 200:
                    self.failures.append(f"{reply.status_code} {reply.text[:80]}")
            except requests.RequestException as exc:
                self.failures.append(type(exc).__name__)
            self._stop.wait(PROBE_INTERVAL)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def code_release(bench: Bench) -> dict[str, Any]:
    app_hosts = [
        hv for hv in bench.kit_vars.values() if {"celery_workers", "web"} & set(hv["groups"])
    ]
    changed = changed_release_extra_vars(app_hosts)
    out: dict[str, Any] = {"added_package": CHANGED_RELEASE_PACKAGE}
    with HealthProbe(bench.web_url) as probe:
        out["release"] = timed_site_yml(
            bench, "provision", "code_release", {}, "deploy.yml", ("-e", changed)
        )
        time.sleep(1)
    out["release"].update(requests_sent=probe.sent, requests_failed=len(probe.failures))
    if probe.failures:
        bench.say(f"WARNING: {len(probe.failures)} failed requests: {probe.failures[:5]}")
    out["back"] = timed_site_yml(bench, "provision", "code_release_back", {}, "deploy.yml")
    return out


def run(bench: Bench) -> dict[str, Any]:
    out: dict[str, Any] = provision.cold_from_phases()
    for key, overrides in (
        ("warm_default", {}),
        ("warm_stock_strategy", provision.STOCK_STRATEGY),
    ):
        out[key] = timed_site_yml(bench, "provision", key, overrides)
    out["code_release"] = code_release(bench)
    return out
