"""Gunicorn profile (BENCH_PROFILE=1): py-spy samples the first web host's gunicorn workers
while wrk posts jobs through nginx; only the stacks through the app's code count."""

from __future__ import annotations

import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pyspy_profile
from cluster import Host
from report import parse_wrk

from phases.common import (
    PYSPY_RATE,
    PYSPY_VENV,
    ensure_pyspy,
    ensure_wrk,
    wait_until_kit_queue_empty,
)

if TYPE_CHECKING:
    from run import Bench

APP_PACKAGE = "kitapp"  # the example app the bench drives (its tasks and endpoints)


def run(bench: Bench) -> dict[str, Any]:
    """py-spy samples the web host's gunicorn workers while wrk posts jobs through nginx."""
    a = bench.args
    web = Host(bench.web_name, bench.kit_vars[bench.web_name], a.inventory)
    ensure_pyspy(bench, web)
    user = shlex.quote(web.app_user)
    master = web.run(f"pgrep -o -u {user} -f gunicorn", timeout=30).stdout.strip()
    output = f"/tmp/kitbench-profile-{bench.run_id}.txt"
    record = (
        f"{PYSPY_VENV}/bin/py-spy record --pid {master} --subprocesses --idle --full-filenames "
        f"--rate {PYSPY_RATE} "
        f"--duration {a.profile_seconds} --format raw --output {output}"
    )
    wrk = (
        f"wrk -t{a.wrk_threads} -c{a.wrk_connections} -d{a.profile_seconds + 4}s "
        f"-s {bench.workdir}/post_job.lua {bench.web_url}/api/jobs"
    )
    ensure_wrk(bench)
    with ThreadPoolExecutor(max_workers=1) as pool:
        bench.say(wrk, bench.driver.name)
        load = pool.submit(bench.driver.run, wrk, a.profile_seconds + 60)
        time.sleep(2)
        bench.say(record, web.name)
        web.run(record, timeout=a.profile_seconds + 60)
        wrk_out = parse_wrk(load.result().stdout)
    raw = web.run(f"cat {output} && rm -f {output}", timeout=60).stdout
    wait_until_kit_queue_empty(bench)
    return {
        "host": web.name,
        "gunicorn_master_pid": int(master),
        "command": record,
        "load": {"command": wrk, "requests_per_s": wrk_out["requests_per_s"]},
        # Only the request threads' time inside the app's code (the package gunicorn serves).
        **pyspy_profile.summarize(pyspy_profile.parse_collapsed(raw), within=APP_PACKAGE),
    }
