"""Celery: N no-op tasks drained by the kit's workers, and the same N by a worker started by
hand the tutorial's way, with the kit workers stopped while the queues fill."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from phases.common import HAND_QUEUE, delete_hand_queue, hand_drain, publish, queue_room

if TYPE_CHECKING:
    from run import Bench


def run(bench: Bench) -> dict[str, Any]:
    n = queue_room(bench, bench.args.tasks)
    out: dict[str, Any] = {"tasks": n, "kit": {}, "hand": {}}
    bench.say("pausing the kit workers (queue fills while nothing consumes)")
    bench.kit_workers("stop")
    try:
        out["kit"]["publish"] = publish(bench, None, n, "kit.ids")
        try:
            out["hand"]["publish"] = publish(bench, HAND_QUEUE, n, "hand.ids")
            bench.say(f"hand-started worker drains {HAND_QUEUE} (kit workers paused)")
            out["hand"]["drain"] = hand_drain(
                bench, "hand.ids", bench.args.hand_concurrency, bench.args.hand_prefetch
            )
        except Exception as exc:  # the kit's own figures are still measured below
            out["hand"]["error"] = f"{type(exc).__name__}: {exc}"
            bench.say(f"hand-started worker FAILED: {exc}")
    finally:
        bench.kill_hand_worker()
        delete_hand_queue(bench)
        bench.say("starting the kit workers again")
        bench.kit_workers("start")
    bench.say("kit workers drain the kit queue")
    out["kit"]["drain"] = bench.script(
        [
            "celery_load.py",
            "drain",
            "--ids-file",
            "kit.ids",
            "--max-seconds",
            str(bench.args.max_seconds),
        ]
    )
    out["kit"]["process_manager"] = ", ".join(
        sorted({h.vars["app_processes_manager"] for h in bench.workers})
    )
    out["kit"]["workers"] = {
        h.name: {
            g["name"]: {k: g.get(k) for k in ("queues", "concurrency", "numprocs")}
            for g in h.vars["celery_worker_groups"]
        }
        for h in bench.workers
    }
    for key in ("kit", "hand"):
        span = out[key].get("drain", {}).get("span_seconds") or 0
        if span < 20:
            bench.say(f"WARNING: {key} drain took {span:.1f}s (< 20 s): raise BENCH_TASKS")
    return out
