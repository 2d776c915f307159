"""One PNG: throughput (left) and latency (right) of a benchmark run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - after choosing the headless backend
from report import _get  # noqa: E402

THROUGHPUT = [
    ("AMQP in\n(raw)", ("broker_ceiling", "publish", "rate")),
    ("AMQP out\n(raw)", ("broker_ceiling", "consume", "steady_rate")),
    ("Celery in\nkit", ("celery", "kit", "publish", "rate")),
    ("Celery out\nkit", ("celery", "kit", "drain", "steady_rate")),
    ("Celery in\nhand", ("celery", "hand", "publish", "rate")),
    ("Celery out\nhand", ("celery", "hand", "drain", "steady_rate")),
    ("HTTP\nPOST jobs", ("http", "post_jobs", "requests_per_s")),
    ("HTTP\nGET ping", ("http", "ping", "requests_per_s")),
]
COLORS = {
    "AMQP": "#8c8c8c",
    "Celery": "#4878a8",
    "HTTP": "#d1884b",
    "POST": "#d1884b",
    "GET": "#e8b27d",
    "e2e": "#5a9e6f",
}
LATENCY = [
    ("POST jobs\np50", ("http", "post_jobs", "latency_ms", "p50")),
    ("POST jobs\np99", ("http", "post_jobs", "latency_ms", "p99")),
    ("GET ping\np50", ("http", "ping", "latency_ms", "p50")),
    ("GET ping\np99", ("http", "ping", "latency_ms", "p99")),
    ("e2e\np50", ("e2e_latency", "latency_ms", "p50")),
    ("e2e\np95", ("e2e_latency", "latency_ms", "p95")),
    ("e2e\np99", ("e2e_latency", "latency_ms", "p99")),
]


def _bars(ax: Any, series: list[tuple[str, tuple[str, ...]]], phases: dict[str, Any]) -> None:
    points = [(label, _get(phases, *path)) for label, path in series]
    points = [(label, value) for label, value in points if isinstance(value, int | float)]
    if not points:
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
        return
    labels = [label for label, _ in points]
    values = [value for _, value in points]
    colors = [COLORS.get(label.split("\n")[0].split()[0], "#4878a8") for label in labels]
    bars = ax.bar(labels, values, color=colors)
    ax.bar_label(bars, labels=[f"{v:,.0f}" if v >= 10 else f"{v:.2f}" for v in values], fontsize=8)
    ax.set_yscale("log")
    ax.tick_params(axis="x", labelsize=8)


def draw(results: dict[str, Any], path: Path) -> Path:
    phases = results["phases"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5), width_ratios=[8, 7])
    _bars(left, THROUGHPUT, phases)
    left.set_title("Throughput (per second, log scale)")
    left.set_ylabel("messages, tasks or requests / s")
    _bars(right, LATENCY, phases)
    right.set_title("Latency (ms, log scale)")
    right.set_ylabel("ms")
    fig.suptitle(f"celerykit benchmark {results['run_id']} ({results.get('queue_type')} queues)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
