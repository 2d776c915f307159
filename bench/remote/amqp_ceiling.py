"""Broker ceiling: raw AMQP (kombu, no Celery) with the guarantees the kit gives Celery.

Runs on a worker host as the app user, through the app's with-env (the broker URLs and the
queue type come from kitapp.config.load_settings(), never from the command line). Prints one
JSON object on stdout.

What "the same guarantees" means here:
- the queue is durable, of the kit's type (quorum when KITAPP_QUEUE_TYPE=quorum, else a durable
  classic queue), bound to a durable direct exchange of the same name (as kitapp's queue is);
- messages are persistent (delivery_mode 2), published one at a time with publisher confirms
  (each publish waits for the broker's ack, as Celery's confirm_publish does);
- consumers ack manually after receiving a message, with prefetch 1 per consumer (per-consumer
  QoS, as quorum queues require); one consumer per kit worker process by default, each its own
  OS process with its own connection (kombu's ';' failover list: the first broker that answers).

The queue has a name of its own in the app's vhost and is deleted afterwards, with its exchange.
Publishing stops at --count messages or --max-seconds, whichever comes first; consuming stops
when every published message is acked or at --max-seconds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import sys
import time
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Barrier
from typing import Any

from kitapp.config import Settings, load_settings
from kombu import Connection, Consumer, Exchange, Producer, Queue
from stats import rate, steady_rate

CONNECT_TIMEOUT = 4


def bench_queue(name: str, queue_type: str) -> Queue:
    arguments = {"x-queue-type": "quorum"} if queue_type == "quorum" else None
    exchange = Exchange(name, type="direct", durable=True)
    return Queue(name, exchange=exchange, routing_key=name, durable=True, queue_arguments=arguments)


def publish(settings: Settings, queue: Queue, count: int, body_bytes: int, deadline: float) -> dict:
    body = {"i": 0, "pad": "x" * body_bytes}
    with Connection(
        settings.broker_url,
        transport_options={"confirm_publish": True},
        connect_timeout=CONNECT_TIMEOUT,
    ) as conn:
        channel = conn.channel()
        queue(channel).declare()
        producer = Producer(channel, exchange=queue.exchange, routing_key=queue.routing_key)
        sent = 0
        started = time.perf_counter()
        while sent < count and time.monotonic() < deadline:
            body["i"] = sent
            producer.publish(body, serializer="json", delivery_mode=2)
            sent += 1
        seconds = time.perf_counter() - started
        broker = conn.as_uri().split("@")[-1]
    return {"sent": sent, "seconds": seconds, "rate": rate(sent, seconds), "broker": broker}


def consume(
    url: str,
    queue: Queue,
    total: int,
    acked: Synchronized,
    barrier: Barrier,
    deadline: float,
    results: mp.Queue,
) -> None:
    """One consumer process: prefetch 1, manual ack; sends its ack times to the parent."""
    times: list[float] = []
    error = None
    try:
        with Connection(url, connect_timeout=CONNECT_TIMEOUT) as conn:
            channel = conn.channel()

            def on_message(_body: Any, message: Any) -> None:
                message.ack()
                times.append(time.time())
                with acked.get_lock():
                    acked.value += 1

            consumer = Consumer(
                channel, queues=[queue], callbacks=[on_message], prefetch_count=1, accept=["json"]
            )
            barrier.wait(timeout=60)
            with consumer:
                while acked.value < total and time.monotonic() < deadline:
                    try:
                        conn.drain_events(timeout=0.2)
                    except TimeoutError:
                        continue
    except Exception as exc:  # reported to the parent, which decides
        error = f"{type(exc).__name__}: {exc}"
        barrier.abort()
    results.put({"times": times, "error": error})


def consume_all(
    settings: Settings, queue: Queue, total: int, consumers: int, deadline: float
) -> dict:
    ctx = mp.get_context("fork")
    acked = ctx.Value("l", 0)
    barrier = ctx.Barrier(consumers + 1)
    results: mp.Queue = ctx.Queue()
    procs = [
        ctx.Process(
            target=consume,
            args=(settings.broker_url, queue, total, acked, barrier, deadline, results),
            daemon=True,
        )
        for _ in range(consumers)
    ]
    for proc in procs:
        proc.start()
    barrier.wait(timeout=60)
    started = time.time()
    replies = [results.get(timeout=max(5.0, deadline - time.monotonic() + 30)) for _ in procs]
    for proc in procs:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
    times = sorted(t for reply in replies for t in reply["times"])
    errors = [reply["error"] for reply in replies if reply["error"]]
    seconds = (times[-1] - started) if times else 0.0
    return {
        "acked": len(times),
        "consumers": consumers,
        "seconds": seconds,
        "rate": rate(len(times), seconds),
        "steady_rate": steady_rate(times),
        "errors": errors,
    }


def delete(settings: Settings, queue: Queue) -> None:
    with Connection(settings.broker_url, connect_timeout=CONNECT_TIMEOUT) as conn:
        channel = conn.channel()
        channel.queue_delete(queue.name)
        channel.exchange_delete(queue.exchange.name)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", default=f"bench-amqp-{socket.gethostname()}-{os.getpid()}")
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--body-bytes", type=int, default=256)
    parser.add_argument("--max-seconds", type=float, default=120)
    args = parser.parse_args(argv)

    settings = load_settings()
    queue = bench_queue(args.queue, settings.queue_type)
    out: dict[str, Any] = {
        "queue": args.queue,
        "queue_type": settings.queue_type,
        "durable": True,
        "persistent": True,
        "publisher_confirms": True,
        "manual_ack": True,
        "prefetch_per_consumer": 1,
        "body_bytes": args.body_bytes,
        "host": socket.gethostname(),
    }
    ok = False
    try:
        out["publish"] = publish(
            settings, queue, args.count, args.body_bytes, time.monotonic() + args.max_seconds
        )
        out["consume"] = consume_all(
            settings,
            queue,
            out["publish"]["sent"],
            args.consumers,
            time.monotonic() + args.max_seconds,
        )
        ok = out["consume"]["acked"] == out["publish"]["sent"] and not out["consume"]["errors"]
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        try:
            delete(settings, queue)
            out["deleted"] = True
        except Exception as exc:
            out["deleted"] = False
            out["delete_error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
