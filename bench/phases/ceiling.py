"""Broker ceiling: raw AMQP publish/consume (kombu, no Celery) from a worker host, with the
kit's guarantees (bench/remote/amqp_ceiling.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cluster import kit_worker_processes

from phases.common import queue_room

if TYPE_CHECKING:
    from run import Bench


def run(bench: Bench) -> dict[str, Any]:
    consumers = bench.args.amqp_consumers or kit_worker_processes(bench.kit_vars) or 1
    return bench.script(
        [
            "amqp_ceiling.py",
            "--queue",
            f"bench-amqp-{bench.run_id}",
            "--count",
            str(queue_room(bench, bench.args.amqp_messages)),
            "--consumers",
            str(consumers),
            "--max-seconds",
            str(bench.args.max_seconds),
        ]
    )
