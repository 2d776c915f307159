"""The alerts Alertmanager holds, read on the monitoring host (its API is on loopback there)."""

from __future__ import annotations

import json
import time

from cluster_runs import HOST_GET, wait_until


class Alerts:
    def __init__(self, host, hv: dict) -> None:
        self.host = host
        self.url = f"http://{hv['alertmanager_listen_address']}:{hv['alertmanager_port']}"

    def active(self) -> list[dict[str, str]]:
        """The labels of every alert Alertmanager holds active (firing, not resolved)."""
        url = f"{self.url}/api/v2/alerts?active=true&silenced=false"
        out = self.host.check_output(f"{HOST_GET}'{url}'")
        return [alert["labels"] for alert in json.loads(out)]

    def is_firing(self, name: str, **labels: str) -> bool:
        return any(
            a.get("alertname") == name and all(a.get(k) == v for k, v in labels.items())
            for a in self.active()
        )

    def wait_firing(self, name: str, timeout: float, **labels: str) -> float:
        """Seconds until the alert fired."""
        started = time.monotonic()
        wait_until(
            lambda: self.is_firing(name, **labels), timeout, f"alert {name} {labels} to fire", 3
        )
        return time.monotonic() - started

    def wait_cleared(self, name: str, timeout: float, **labels: str) -> float:
        """Seconds until the alert was resolved."""
        started = time.monotonic()
        wait_until(
            lambda: not self.is_firing(name, **labels),
            timeout,
            f"alert {name} {labels} to clear",
            3,
        )
        return time.monotonic() - started
