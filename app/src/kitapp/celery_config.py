"""The Celery configuration derived from kitapp's Settings (pure: no I/O, no env)."""

from __future__ import annotations

import ssl
from typing import Any

from kombu import Exchange, Queue

from kitapp.config import Settings

# How long a publish waits for the broker's confirm before it counts as failed and is retried:
# with the retries below a submission gives up (503) in about 10 s, before a client's usual 15 s.
# Unbounded, a request waited as long as a quorum queue whose leader was cut off from the
# cluster's majority took to elect another (over 15 s in the partition fault scenario).
PUBLISH_CONFIRM_TIMEOUT_SECONDS = 2.0
# Publishing a task retries this often before giving up (the web API then answers 503).
PUBLISH_RETRY_POLICY: dict[str, float] = {
    "max_retries": 3,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 2,
}


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration derived from kitapp's settings (pure: no I/O)."""
    # Only quorum sets the argument: re-declaring an existing classic queue with different
    # arguments would fail with PRECONDITION_FAILED.
    queue_arguments = {"x-queue-type": "quorum"} if settings.queue_type == "quorum" else None
    exchange = Exchange(settings.default_queue, type="direct", durable=True)
    queue = Queue(
        settings.default_queue,
        exchange=exchange,
        routing_key=settings.default_queue,
        durable=True,
        queue_arguments=queue_arguments,
    )
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        # Serialization: JSON only, never pickle.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # Queues: one durable queue, declared explicitly.
        "task_queues": (queue,),
        "task_default_queue": settings.default_queue,
        "task_default_exchange": settings.default_queue,
        "task_default_exchange_type": "direct",
        "task_default_routing_key": settings.default_queue,
        "task_create_missing_queues": False,
        # Reliability: a task is acknowledged only after it ran, and given back if the
        # process running it died; one message reserved per process at a time.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": settings.prefetch_multiplier,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Publishing: broker confirms every message; bounded retries when it is unreachable.
        "broker_transport_options": {"confirm_publish": True},
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 4,
        "task_publish_retry": True,
        "task_publish_retry_policy": dict(PUBLISH_RETRY_POLICY),
        # Time limits.
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_time_limit,
        # Results: STARTED is reported, name/args/timestamps stored, kept result_expires s.
        "task_track_started": True,
        "result_extended": True,
        "result_expires": settings.result_expires,
        "result_backend_always_retry": True,
        "result_backend_max_retries": 10,
        "redis_socket_timeout": 5,
        "redis_socket_connect_timeout": 5,
        "redis_retry_on_timeout": True,
        # Operations.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": True,
        "timezone": "UTC",
        "enable_utc": True,
    }
    if settings.broker_ca_file:
        # amqps://: the broker's certificate must chain to this CA and carry the brokers' shared
        # TLS name. Not server_hostname None ("the host of the URL"): kombu writes the first
        # connection's host into these shared options, and every other broker then fails.
        config["broker_use_ssl"] = {
            "ca_certs": settings.broker_ca_file,
            "cert_reqs": ssl.CERT_REQUIRED,
            "server_hostname": settings.broker_tls_name,
        }
    if settings.beat_heartbeat_seconds:
        # celery beat sends a no-op every N seconds: a periodic task that shows the one beat
        # process of the deployment is alive and its schedule reaches the workers.
        config["beat_schedule"] = {
            "heartbeat": {"task": "kitapp.noop", "schedule": settings.beat_heartbeat_seconds}
        }
    if settings.queue_type == "quorum":
        # Quorum queues: Celery detects them and switches to per-consumer QoS; queues it
        # declares on its own (e.g. for native delayed delivery) are quorum too.
        config["worker_detect_quorum_queues"] = True
        config["task_default_queue_type"] = "quorum"
        config["task_create_missing_queue_type"] = "quorum"
    return config
