from __future__ import annotations

from kitapp.celery_config import PUBLISH_RETRY_POLICY, celery_config
from kitapp.config import load_settings

BASE = {
    "KITAPP_BROKER_URLS": "amqp://u:p@r1/v;amqp://u:p@r2/v",
    "KITAPP_RESULT_BACKEND": "redis://r:6379/0",
}


def test_reliability_defaults() -> None:
    conf = celery_config(load_settings(BASE))
    assert conf["broker_url"] == "amqp://u:p@r1/v;amqp://u:p@r2/v"
    assert conf["task_acks_late"] is True
    assert conf["task_reject_on_worker_lost"] is True
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["broker_transport_options"] == {"confirm_publish": True}
    assert conf["broker_connection_retry_on_startup"] is True
    assert conf["task_publish_retry"] is True
    assert conf["task_publish_retry_policy"] == PUBLISH_RETRY_POLICY
    assert PUBLISH_RETRY_POLICY["max_retries"] == 3
    assert conf["worker_cancel_long_running_tasks_on_connection_loss"] is True
    assert conf["task_track_started"] is True
    assert conf["result_extended"] is True
    assert conf["result_expires"] == 86400
    assert (conf["task_soft_time_limit"], conf["task_time_limit"]) == (300, 360)
    assert conf["task_serializer"] == conf["result_serializer"] == "json"
    assert conf["accept_content"] == ["json"]


def test_classic_queue_is_durable_without_type_argument() -> None:
    conf = celery_config(load_settings(BASE))
    (queue,) = conf["task_queues"]
    assert queue.name == conf["task_default_queue"] == "kitapp"
    assert queue.durable is True
    assert queue.exchange.durable is True
    assert not queue.queue_arguments
    assert "task_default_queue_type" not in conf


def test_quorum_queue() -> None:
    settings = load_settings(
        {**BASE, "KITAPP_QUEUE_TYPE": "quorum", "KITAPP_DEFAULT_QUEUE": "jobs"}
    )
    conf = celery_config(settings)
    (queue,) = conf["task_queues"]
    assert queue.name == "jobs"
    assert queue.queue_arguments == {"x-queue-type": "quorum"}
    assert queue.durable is True
    assert conf["worker_detect_quorum_queues"] is True
    assert conf["task_default_queue_type"] == "quorum"
    assert conf["broker_transport_options"]["confirm_publish"] is True


def test_settings_flow_through() -> None:
    settings = load_settings(
        {
            **BASE,
            "KITAPP_PREFETCH_MULTIPLIER": "4",
            "KITAPP_RESULT_EXPIRES": "60",
            "KITAPP_TASK_SOFT_TIME_LIMIT": "5",
            "KITAPP_TASK_TIME_LIMIT": "6",
        }
    )
    conf = celery_config(settings)
    assert conf["worker_prefetch_multiplier"] == 4
    assert conf["result_expires"] == 60
    assert (conf["task_soft_time_limit"], conf["task_time_limit"]) == (5, 6)


def test_beat_schedule_is_off_by_default() -> None:
    assert "beat_schedule" not in celery_config(load_settings(BASE))


def test_beat_heartbeat_schedules_a_noop() -> None:
    env = {**BASE, "KITAPP_BEAT_HEARTBEAT_SECONDS": "30"}
    schedule = celery_config(load_settings(env))["beat_schedule"]
    assert schedule == {"heartbeat": {"task": "kitapp.noop", "schedule": 30}}


def test_amqps_verifies_every_broker_against_the_ca_and_the_brokers_tls_name() -> None:
    import ssl

    config = celery_config(
        load_settings(
            {
                **BASE,
                "KITAPP_BROKER_URLS": "amqps://u:p@r1:5671/v;amqps://u:p@r2:5671/v",
                "KITAPP_BROKER_CA_FILE": "/etc/kitapp/broker-ca.crt",
                "KITAPP_BROKER_TLS_NAME": "rabbitmq.cluster",
            }
        )
    )
    assert config["broker_use_ssl"] == {
        "ca_certs": "/etc/kitapp/broker-ca.crt",
        "cert_reqs": ssl.CERT_REQUIRED,
        "server_hostname": "rabbitmq.cluster",
    }
    assert "broker_use_ssl" not in celery_config(load_settings(BASE))
