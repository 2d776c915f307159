"""Tuning sweep (BENCH_SWEEP=1): hand-started workers over a concurrency x prefetch grid, for
short tasks (no-ops, one worker host) and long ones (sleeps of mixed length, every worker
host), with the kit workers stopped."""

from __future__ import annotations

import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cluster import remote_files

from phases.common import HAND_QUEUE, delete_hand_queue, hand_drain, publish, queue_room

if TYPE_CHECKING:
    from run import Bench

SWEEP_GRID = [(c, p) for c in (1, 2, 4) for p in (1, 4)]


@dataclass(frozen=True)
class Workload:
    name: str
    tasks: int
    sleep_pattern: str  # "" for no-ops
    all_workers: bool  # hand workers on every worker host, or on the driver only
    metric: str  # the drain figure the points are compared on


def sweep_point(bench: Bench, load: Workload, concurrency: int, prefetch: int) -> dict[str, Any]:
    """One grid point: fill bench-hand, drain it with hand workers, report the drain."""
    point: dict[str, Any] = {"concurrency": concurrency, "prefetch": prefetch}
    helpers = bench.workers[1:] if load.all_workers else []
    worker_args = ["--queue", HAND_QUEUE, "--concurrency", str(concurrency)]
    worker_args += ["--prefetch", str(prefetch), "--max-seconds", str(bench.args.max_seconds)]
    extra = ["--sleep-pattern", load.sleep_pattern] if load.sleep_pattern else []
    bench.say(f"{load.name}: concurrency {concurrency}, prefetch {prefetch}")
    try:
        point["publish"] = publish(
            bench, HAND_QUEUE, queue_room(bench, load.tasks), "sweep.ids", extra
        )
        with ThreadPoolExecutor(max_workers=max(1, len(helpers))) as pool:
            started = [
                pool.submit(
                    host.app_script,
                    bench.workdir,
                    ["celery_load.py", "hand-worker", "--stop-file", "stop", *worker_args],
                    bench.step_timeout,
                )
                for host in helpers
            ]
            try:
                drain = hand_drain(bench, "sweep.ids", concurrency, prefetch)
            finally:
                for host in helpers:
                    host.run(f"touch {shlex.quote(bench.workdir)}/stop", timeout=30, check=False)
            point["helpers"] = [f.result() for f in started]
        point.update(rate=drain.get(load.metric), drain=drain)
        if drain.get("timed_out"):
            point["error"] = "timed out"
    except Exception as exc:
        point["error"] = str(exc)
    finally:
        for host in [bench.driver, *helpers]:
            bench.kill_hand_worker(host)
        delete_hand_queue(bench)
    return point


def run(bench: Bench) -> dict[str, Any]:
    """Hand-started workers over a concurrency x prefetch grid, for short and for long tasks."""
    args = bench.args
    loads = [
        Workload("short", args.sweep_tasks, "", all_workers=False, metric="steady_rate"),
        Workload(
            "long", args.sweep_long_tasks, args.sweep_long_pattern, all_workers=True, metric="rate"
        ),
    ]
    deadline = time.monotonic() + args.sweep_max_seconds
    out: dict[str, Any] = {}
    bench.say("pausing the kit workers for the sweep")
    bench.kit_workers("stop")
    try:
        for host in bench.workers[1:]:
            bench.say(f"copying bench/remote to {bench.workdir}", host.name)
            host.make_workdir(bench.workdir, remote_files())
        for load in loads:
            points = []
            for concurrency, prefetch in SWEEP_GRID:
                if time.monotonic() > deadline:
                    break
                points.append(sweep_point(bench, load, concurrency, prefetch))
            good = [p for p in points if "error" not in p and p.get("rate")]
            fastest = max(good, key=lambda p: p["rate"], default=None)
            out[load.name] = {
                "tasks_per_point": load.tasks,
                "sleep_pattern": load.sleep_pattern or None,
                "worker_hosts": [
                    h.name for h in (bench.workers if load.all_workers else [bench.driver])
                ],
                "metric": load.metric,
                "points": points,
                "fastest": {k: fastest[k] for k in ("concurrency", "prefetch", "rate")}
                if fastest
                else None,
                "partial": len(good) < len(SWEEP_GRID),
            }
    finally:
        bench.say("starting the kit workers again")
        bench.kit_workers("start")
    return out
