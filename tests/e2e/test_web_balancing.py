"""nginx on a web host balances over every web host's gunicorn, not only its own."""

from __future__ import annotations

import uuid

import pytest
import requests


def test_one_nginx_spreads_requests_over_every_web_hosts_gunicorn(
    hosts, kit_vars, web_url, web_hosts
) -> None:
    if len(web_hosts) < 2:
        pytest.skip("one web host: nothing to balance over")
    marker = f"balance-{uuid.uuid4().hex}"
    for _ in range(10 * len(web_hosts)):
        assert requests.get(f"{web_url}/ping", params={"m": marker}, timeout=10).status_code == 200

    served: dict[str, int] = {}
    for name in web_hosts:
        hv = kit_vars[name]
        log = f"{hv['celery_app_log_dir']}/{hv['celery_app_name']}-gunicorn.log"
        served[name] = int(hosts[name].run(f"grep -c {marker} {log}").stdout.strip() or 0)
    assert sum(served.values()) == 10 * len(web_hosts), served
    assert all(count > 0 for count in served.values()), served
