"""The app vhost's dead letters: declare their queue, list them, replay chosen ones.

The broker's policy sends a task message that cannot be delivered any more (redelivered past the
quorum queue's delivery limit: a task that kills its worker every time; or rejected without
requeue) to the dead-letter exchange, which routes it to one durable queue. Nothing is dropped:
this tool shows what is there and puts chosen messages back on the queue each died in.

Runs on an app host with the release's Python (kombu comes with Celery) and the app's
environment (CELERY_BROKER_URL, a `;`-separated failover list):

    with-env current/bin/python celery-dead-letters.py declare --queue Q --queue-type quorum
    with-env current/bin/python celery-dead-letters.py list --queue Q
    with-env current/bin/python celery-dead-letters.py replay --queue Q ID [ID ...] | --all

`list` and `replay` print one JSON object per message: id, task, reason, count, queue, time
(and `replayed` for replay). A message is acknowledged in the dead-letter queue only after the
broker confirmed its copy on the original queue.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# Headers the broker adds when it dead-letters a message; a replayed copy starts without them.
BROKER_HEADERS = (
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-delivery-count",
)
# Message properties a replayed copy keeps.
KEPT_PROPERTIES = ("correlation_id", "reply_to", "expiration", "message_id")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def describe(headers: dict[str, Any] | None, properties: dict[str, Any] | None) -> dict[str, Any]:
    """What a dead letter is, from its headers: the Celery task id and name (protocol 2 headers,
    or the correlation id), and from the broker's newest x-death entry why it died, where, when
    and how many times it died there."""
    headers = headers or {}
    properties = properties or {}
    deaths = headers.get("x-death") or []
    last = deaths[0] if deaths else {}
    when = last.get("time")
    return {
        "id": _text(headers.get("id") or properties.get("correlation_id") or ""),
        "task": _text(headers.get("task") or ""),
        "reason": _text(last.get("reason") or headers.get("x-last-death-reason") or "unknown"),
        "count": int(last.get("count") or 0),
        "queue": _text(last.get("queue") or headers.get("x-last-death-queue") or ""),
        "time": when.isoformat() if hasattr(when, "isoformat") else (str(when) if when else ""),
    }


def replay_headers(headers: dict[str, Any] | None) -> dict[str, Any]:
    """The headers of a replayed copy: the message's own, without the broker's death records."""
    return {k: v for k, v in (headers or {}).items() if k not in BROKER_HEADERS}


def chosen(row: dict[str, Any], ids: set[str], everything: bool) -> bool:
    return everything or row["id"] in ids


def broker_connection(ca_file: str | None):  # -> kombu.Connection
    from kombu import Connection

    url = os.environ.get("CELERY_BROKER_URL", "")
    if not url:
        raise SystemExit("CELERY_BROKER_URL is not set: run this through the app's with-env")
    ssl_options: Any = False
    if url.startswith("amqps://"):
        # The broker's certificate must chain to the site's CA and name the host in the URL.
        ssl_options = {"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": None}
        if ca_file:
            ssl_options["ca_certs"] = ca_file
    return Connection(
        url,
        ssl=ssl_options,
        connect_timeout=5,
        transport_options={"confirm_publish": True},
    )


@contextmanager
def connected(ca_file: str | None) -> Iterator[Any]:
    connection = broker_connection(ca_file)
    try:
        connection.ensure_connection(max_retries=3)
        yield connection
    finally:
        # Messages taken and not acknowledged go back to the dead-letter queue here.
        connection.release()


def queue_exists(connection: Any, queue: str) -> bool:
    from amqp.exceptions import NotFound

    ch = connection.channel()  # a passive declare of a missing queue closes its channel
    try:
        ch.queue_declare(queue=queue, passive=True)
    except NotFound:
        return False
    ch.close()
    return True


def declare(connection: Any, queue: str, queue_type: str) -> bool:
    """Declares the dead-letter exchange (fanout, named like the queue) and its durable queue,
    bound to it; True when the queue did not exist yet."""
    existed = queue_exists(connection, queue)
    arguments = {"x-queue-type": "quorum"} if queue_type == "quorum" else {}
    ch = connection.channel()
    ch.exchange_declare(exchange=queue, type="fanout", durable=True, auto_delete=False)
    ch.queue_declare(
        queue=queue, durable=True, exclusive=False, auto_delete=False, arguments=arguments
    )
    ch.queue_bind(queue=queue, exchange=queue, routing_key="")
    ch.close()
    return not existed


def dead_letters(ch: Any, queue: str) -> Iterator[Any]:
    """Every message in the queue, taken unacknowledged (they return when the channel closes)."""
    while True:
        message = ch.basic_get(queue=queue, no_ack=False)
        if message is None:
            return
        yield message


def replay(ch: Any, message: Any, row: dict[str, Any]) -> None:
    """Publishes a copy onto the queue the message died in (through the default exchange, which
    routes by queue name) and, once the broker confirmed it, acknowledges the dead letter."""
    properties = message.properties
    kept = {k: properties[k] for k in KEPT_PROPERTIES if k in properties}
    copy = ch.prepare_message(
        message.body,
        priority=properties.get("priority"),
        content_type=properties.get("content_type"),
        content_encoding=properties.get("content_encoding"),
        headers=replay_headers(properties.get("application_headers")),
        properties={"delivery_mode": 2, **kept},
    )
    ch.basic_publish(copy, exchange="", routing_key=row["queue"])
    ch.basic_ack(message.delivery_tag)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["declare", "list", "replay"])
    parser.add_argument("ids", nargs="*", help="task ids to replay")
    parser.add_argument("--queue", required=True, help="the dead-letter queue (and exchange)")
    parser.add_argument("--queue-type", choices=["quorum", "classic"], default="quorum")
    parser.add_argument("--ca-file", help="CA of the brokers' certificates (amqps)")
    parser.add_argument("--all", action="store_true", help="replay every dead letter")
    args = parser.parse_intermixed_args(argv)
    if args.action == "replay" and not (args.ids or args.all):
        parser.error("replay needs task ids or --all")

    with connected(args.ca_file) as connection:
        if args.action == "declare":
            print("created" if declare(connection, args.queue, args.queue_type) else "exists")
            return 0
        if not queue_exists(connection, args.queue):
            print(f"no queue {args.queue}", file=sys.stderr)
            return 2
        wanted = set(args.ids)
        targets: set[str] = set()  # queues replayed onto, each checked once
        ch = connection.channel()
        for message in dead_letters(ch, args.queue):
            row = describe(message.properties.get("application_headers"), message.properties)
            if args.action == "replay":
                row["replayed"] = chosen(row, wanted, args.all)
                if row["replayed"]:
                    if row["queue"] not in targets and not queue_exists(connection, row["queue"]):
                        print(f"{row['id']}: its queue {row['queue']!r} is gone", file=sys.stderr)
                        return 1
                    targets.add(row["queue"])
                    replay(ch, message, row)
                    wanted.discard(row["id"])
            print(json.dumps(row), flush=True)
        if wanted:
            print(f"not in {args.queue}: {' '.join(sorted(wanted))}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
