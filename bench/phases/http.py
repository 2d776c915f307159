"""HTTP: wrk on a worker host against GET /ping and POST /api/jobs (nginx -> gunicorn)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from report import parse_wrk

from phases.common import ensure_wrk, wait_until_kit_queue_empty

if TYPE_CHECKING:
    from run import Bench


def run(bench: Bench) -> dict[str, Any]:
    driver = bench.driver
    ensure_wrk(bench)
    a = bench.args
    wrk = f"wrk -t{a.wrk_threads} -c{a.wrk_connections} -d{a.wrk_duration}s --latency"
    out: dict[str, Any] = {"from": driver.name, "command": wrk}
    for key, target in (("ping", "/ping"), ("post_jobs", "/api/jobs")):
        script = f" -s {bench.workdir}/post_job.lua" if key == "post_jobs" else ""
        command = f"{wrk}{script} {bench.web_url}{target}"
        bench.say(command, driver.name)
        result = driver.run(command, timeout=a.wrk_duration + 60)
        out[key] = {**parse_wrk(result.stdout), "url": f"{bench.web_url}{target}"}
    out["queue_after"] = wait_until_kit_queue_empty(bench)
    return out
