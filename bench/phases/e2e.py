"""End-to-end latency: POST /api/jobs until a GET reports SUCCESS, at a light steady rate, from
this machine (bench/e2e_latency.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import e2e_latency

if TYPE_CHECKING:
    from run import Bench


def run(bench: Bench) -> dict[str, Any]:
    a = bench.args
    bench.say(f"{a.e2e_rate:g} jobs/s for {a.e2e_seconds:g}s -> {bench.web_url}", "control node")
    return e2e_latency.run(bench.web_url, rate=a.e2e_rate, seconds=a.e2e_seconds)
