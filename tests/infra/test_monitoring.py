"""Monitoring: Prometheus scrapes every exporter of the inventory, each open to it only, and
loads the kit's alert rules; Alertmanager receives from it."""

from __future__ import annotations

import json
import shlex
import time

import pytest
from cluster_runs import HOST_GET

testinfra_hosts = ["ansible://monitoring"]

EXPORTER_JOBS = ("node", "rabbitmq", "redis", "nginx")
# A fresh Prometheus needs a scrape interval or two before every target has been seen.
TARGETS_TIMEOUT = 90


def api(host, url: str) -> dict:
    return json.loads(host.check_output(HOST_GET + url))


def prometheus_url(hv: dict, path: str) -> str:
    return f"http://{hv['prometheus_listen_address']}:{hv['prometheus_port']}{path}"


def test_prometheus_and_alertmanager_run_and_start_at_boot(host) -> None:
    for name in ("prometheus", "prometheus-alertmanager"):
        service = host.service(name)
        assert service.is_running, name
        assert service.is_enabled, name


def test_prometheus_reports_every_target_of_the_inventory_up(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    wanted = {
        (job["job_name"], target["host"], target["address"])
        for job in hv["prometheus_scrape_jobs"]
        for target in job["targets"]
    }
    # Every host of the inventory is a node target, every broker a rabbitmq one.
    assert {h for j, h, _ in wanted if j == "node"} == set(kit_vars)
    assert {h for j, h, _ in wanted if j == "rabbitmq"} == {
        name for name, v in kit_vars.items() if "rabbitmq" in v["groups"]
    }
    deadline = time.monotonic() + TARGETS_TIMEOUT
    while True:
        active = api(host, prometheus_url(hv, "/api/v1/targets?state=active"))["data"]
        seen = {
            (t["labels"]["job"], t["labels"]["host"], t["labels"]["instance"]): t
            for t in active["activeTargets"]
        }
        down = {k: t.get("lastError") for k, t in seen.items() if t["health"] != "up"}
        if (set(seen) == wanted and not down) or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert set(seen) == wanted
    assert not down


# Run on a host: GET every URL of argv at once; prints {url: "ok" or the error}.
GET_ALL = """
import json, sys, urllib.request as u
from concurrent.futures import ThreadPoolExecutor
def get(url):
    try:
        u.urlopen(url, timeout=5).read()
        return "ok"
    except Exception as exc:
        return str(exc)
with ThreadPoolExecutor(len(sys.argv) - 1) as pool:
    print(json.dumps(dict(zip(sys.argv[1:], pool.map(get, sys.argv[1:])))))
"""


def get_all(host, urls: list[str]) -> dict[str, str]:
    return json.loads(host.check_output(f"python3 -c {shlex.quote(GET_ALL)} {' '.join(urls)}"))


def test_every_exporter_answers_the_monitoring_host_and_no_other(host, hosts, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    monitoring = set(hv["kit_monitoring_sources"])
    others = [n for n, v in sorted(kit_vars.items()) if v["cluster_address"] not in monitoring]
    by_outsider: dict[str, list[str]] = {}
    for job in hv["prometheus_scrape_jobs"]:
        if job["job_name"] not in EXPORTER_JOBS:
            continue
        for target in job["targets"]:
            # Another cluster host (a host reaches its own addresses over loopback).
            outsider = next(n for n in others if n != target["host"])
            by_outsider.setdefault(outsider, []).append(f"http://{target['address']}/metrics")
    urls = [url for group in by_outsider.values() for url in group]
    assert urls, "no exporter target in the scrape jobs"
    assert get_all(host, urls) == dict.fromkeys(urls, "ok")
    for outsider, group in by_outsider.items():
        # The firewall drops it (timed out) or the host refuses it.
        answers = get_all(hosts[outsider], group)
        assert all("timed out" in a or "refused" in a for a in answers.values()), (
            outsider,
            answers,
        )


def test_the_kits_alert_rules_are_loaded_and_alertmanager_is_their_destination(
    host, kit_vars
) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    rules = api(host, prometheus_url(hv, "/api/v1/rules?type=alert"))["data"]["groups"]
    loaded = {r["name"] for g in rules for r in g["rules"]}
    wanted = {r["alert"] for g in hv["prometheus_rule_groups"] for r in g["rules"]}
    assert "KitDeadLetters" in wanted and "KitWorkersMissing" in wanted
    assert loaded == wanted
    assert all(r["health"] == "ok" for g in rules for r in g["rules"])
    managers = api(host, prometheus_url(hv, "/api/v1/alertmanagers"))["data"]
    assert [a["url"] for a in managers["activeAlertmanagers"]] == [
        f"http://{a}/api/v2/alerts" for a in hv["prometheus_alertmanagers"]
    ]


@pytest.mark.parametrize("port_var", ["prometheus_port", "alertmanager_port"])
def test_prometheus_and_alertmanager_listen_on_loopback_only(host, kit_vars, port_var) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    port = int(hv[port_var])
    assert host.socket(f"tcp://127.0.0.1:{port}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening
    assert not host.socket(f"tcp://{hv['cluster_address']}:{port}").is_listening
