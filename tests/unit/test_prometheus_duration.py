"""The tests' reading of Prometheus durations (tests/cluster_runs.py), which the alert tests
take their bounds from (kit_alert_unacked_for, prometheus_scrape_interval)."""

from __future__ import annotations

import pytest
from cluster_runs import prometheus_seconds


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [("40s", 40), ("5m", 300), ("1m30s", 90), ("2h", 7200), ("1d", 86400), ("500ms", 0.5)],
)
def test_a_prometheus_duration_reads_as_seconds(duration: str, seconds: float) -> None:
    assert prometheus_seconds(duration) == seconds


@pytest.mark.parametrize("duration", ["", "40", "s", "1.5m", "40 s", "1x", "5m!"])
def test_anything_else_is_refused(duration: str) -> None:
    with pytest.raises(ValueError):
        prometheus_seconds(duration)
