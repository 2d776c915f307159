from __future__ import annotations

import ipaddress

import pytest

from kitapp.config import ConfigError, Settings, load_settings, redact_url

BASE = {
    "KITAPP_BROKER_URLS": "amqp://kit:secret@rabbit1:5672/kitapp",
    "KITAPP_RESULT_BACKEND": "redis://:hunter2@redis:6379/0",
}


def settings_with(**overrides: str) -> Settings:
    return load_settings({**BASE, **overrides})


def test_defaults() -> None:
    s = load_settings(BASE)
    assert s.broker_urls == ("amqp://kit:secret@rabbit1:5672/kitapp",)
    assert s.result_backend == "redis://:hunter2@redis:6379/0"
    assert s.default_queue == "kitapp"
    assert s.queue_type == "classic"
    assert (s.task_soft_time_limit, s.task_time_limit) == (300, 360)
    assert s.result_expires == 86400
    assert s.prefetch_multiplier == 1
    assert s.tutorial_sleep_seconds == 10.0
    assert s.download_dir == "/var/lib/kitapp/downloads"
    assert s.download_max_bytes == 50 * 1024 * 1024
    assert s.download_timeout == 30
    assert s.download_allowed_networks == ()
    assert s.max_request_bytes == 65536
    assert s.result_backend_is_redis


def test_settings_are_frozen() -> None:
    s = load_settings(BASE)
    with pytest.raises(AttributeError):
        s.default_queue = "other"  # type: ignore[misc]


def test_every_variable_is_read() -> None:
    s = settings_with(
        KITAPP_BROKER_URLS=" amqps://a@h1/v ; amqps://b@h2:5671/v ;",
        KITAPP_BROKER_CA_FILE="/etc/ca.crt",
        KITAPP_BROKER_TLS_NAME="rabbitmq.cluster",
        KITAPP_RESULT_BACKEND="rpc://",
        KITAPP_DEFAULT_QUEUE="jobs",
        KITAPP_QUEUE_TYPE="Quorum",
        KITAPP_TASK_SOFT_TIME_LIMIT="10",
        KITAPP_TASK_TIME_LIMIT="11",
        KITAPP_RESULT_EXPIRES="60",
        KITAPP_PREFETCH_MULTIPLIER="4",
        KITAPP_TUTORIAL_SLEEP_SECONDS="0.5",
        KITAPP_DOWNLOAD_DIR="/srv/dl",
        KITAPP_DOWNLOAD_MAX_BYTES="1000",
        KITAPP_DOWNLOAD_TIMEOUT="5",
        KITAPP_DOWNLOAD_ALLOWED_NETWORKS="127.0.0.0/8, 10.1.2.0/24,fd00::/8",
        KITAPP_MAX_REQUEST_BYTES="2048",
    )
    assert s.broker_urls == ("amqps://a@h1/v", "amqps://b@h2:5671/v")
    assert s.broker_url == "amqps://a@h1/v;amqps://b@h2:5671/v"
    assert (s.broker_ca_file, s.broker_tls_name) == ("/etc/ca.crt", "rabbitmq.cluster")
    assert s.result_backend == "rpc://"
    assert not s.result_backend_is_redis
    assert s.default_queue == "jobs"
    assert s.queue_type == "quorum"
    assert (s.task_soft_time_limit, s.task_time_limit) == (10, 11)
    assert s.result_expires == 60
    assert s.prefetch_multiplier == 4
    assert s.tutorial_sleep_seconds == 0.5
    assert s.download_dir == "/srv/dl"
    assert s.download_max_bytes == 1000
    assert s.download_timeout == 5
    assert s.download_allowed_networks == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("10.1.2.0/24"),
        ipaddress.ip_network("fd00::/8"),
    )
    assert s.max_request_bytes == 2048


def test_empty_values_mean_default() -> None:
    s = settings_with(KITAPP_DEFAULT_QUEUE="", KITAPP_TASK_TIME_LIMIT="  ")
    assert s.default_queue == "kitapp"
    assert s.task_time_limit == 360


@pytest.mark.parametrize("backend", ["redis://localhost", "rediss://:p@r:6380/1", "rpc://"])
def test_accepted_result_backends(backend: str) -> None:
    assert settings_with(KITAPP_RESULT_BACKEND=backend).result_backend == backend


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"KITAPP_RESULT_BACKEND": "rpc://"}, "KITAPP_BROKER_URLS is required"),
        ({"KITAPP_BROKER_URLS": "amqp://h/v"}, "KITAPP_RESULT_BACKEND is required"),
        ({**BASE, "KITAPP_BROKER_URLS": " ; ;"}, "KITAPP_BROKER_URLS is required"),
    ],
)
def test_required_variables(env: dict[str, str], missing: str) -> None:
    with pytest.raises(ConfigError, match=missing):
        load_settings(env)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("KITAPP_BROKER_URLS", "redis://h", "KITAPP_BROKER_URLS must use one of amqp://, amqps://"),
        ("KITAPP_BROKER_URLS", "amqp://h/v;http://x", "KITAPP_BROKER_URLS must use one of"),
        ("KITAPP_BROKER_URLS", "rabbit:5672", "KITAPP_BROKER_URLS must use one of"),
        ("KITAPP_BROKER_URLS", "amqp:///vhost", "KITAPP_BROKER_URLS URL has no host"),
        ("KITAPP_BROKER_URLS", "amqp://h:notaport/v", "KITAPP_BROKER_URLS contains a malformed"),
        ("KITAPP_RESULT_BACKEND", "amqp://h", "KITAPP_RESULT_BACKEND must use one of redis://"),
        ("KITAPP_RESULT_BACKEND", "db+sqlite:///x", "KITAPP_RESULT_BACKEND must use one of"),
        ("KITAPP_DEFAULT_QUEUE", "two words", "KITAPP_DEFAULT_QUEUE must be a queue name"),
        ("KITAPP_QUEUE_TYPE", "stream", "KITAPP_QUEUE_TYPE must be one of classic, quorum"),
        ("KITAPP_TASK_SOFT_TIME_LIMIT", "abc", "KITAPP_TASK_SOFT_TIME_LIMIT must be an integer"),
        ("KITAPP_TASK_SOFT_TIME_LIMIT", "0", "KITAPP_TASK_SOFT_TIME_LIMIT must be an integer >= 1"),
        ("KITAPP_TASK_TIME_LIMIT", "1.5", "KITAPP_TASK_TIME_LIMIT must be an integer"),
        (
            "KITAPP_TASK_TIME_LIMIT",
            "300",
            "KITAPP_TASK_TIME_LIMIT must be an integer > KITAPP_TASK_SOFT_TIME_LIMIT",
        ),
        ("KITAPP_TASK_TIME_LIMIT", "-5", "KITAPP_TASK_TIME_LIMIT must be an integer >= 1"),
        ("KITAPP_RESULT_EXPIRES", "1d", "KITAPP_RESULT_EXPIRES must be an integer"),
        ("KITAPP_RESULT_EXPIRES", "-1", "KITAPP_RESULT_EXPIRES must be an integer >= 1"),
        ("KITAPP_PREFETCH_MULTIPLIER", "0", "KITAPP_PREFETCH_MULTIPLIER must be an integer >= 1"),
        ("KITAPP_PREFETCH_MULTIPLIER", "x", "KITAPP_PREFETCH_MULTIPLIER must be an integer"),
        ("KITAPP_TUTORIAL_SLEEP_SECONDS", "-1", "KITAPP_TUTORIAL_SLEEP_SECONDS must be a finite"),
        ("KITAPP_TUTORIAL_SLEEP_SECONDS", "nan", "KITAPP_TUTORIAL_SLEEP_SECONDS must be a finite"),
        ("KITAPP_TUTORIAL_SLEEP_SECONDS", "soon", "KITAPP_TUTORIAL_SLEEP_SECONDS must be a number"),
        ("KITAPP_DOWNLOAD_DIR", "relative/dir", "KITAPP_DOWNLOAD_DIR must be an absolute path"),
        ("KITAPP_DOWNLOAD_MAX_BYTES", "50MiB", "KITAPP_DOWNLOAD_MAX_BYTES must be an integer"),
        ("KITAPP_DOWNLOAD_MAX_BYTES", "0", "KITAPP_DOWNLOAD_MAX_BYTES must be an integer >= 1"),
        ("KITAPP_DOWNLOAD_TIMEOUT", "-3", "KITAPP_DOWNLOAD_TIMEOUT must be an integer >= 1"),
        ("KITAPP_DOWNLOAD_TIMEOUT", "ten", "KITAPP_DOWNLOAD_TIMEOUT must be an integer"),
        (
            "KITAPP_DOWNLOAD_ALLOWED_NETWORKS",
            "127.0.0.0/33",
            "KITAPP_DOWNLOAD_ALLOWED_NETWORKS contains an invalid CIDR",
        ),
        (
            "KITAPP_DOWNLOAD_ALLOWED_NETWORKS",
            "10.0.0.0/8,localnet",
            "KITAPP_DOWNLOAD_ALLOWED_NETWORKS contains an invalid CIDR",
        ),
        ("KITAPP_MAX_REQUEST_BYTES", "1e6", "KITAPP_MAX_REQUEST_BYTES must be an integer"),
        ("KITAPP_MAX_REQUEST_BYTES", "-1", "KITAPP_MAX_REQUEST_BYTES must be an integer >= 1"),
        (
            "KITAPP_BEAT_HEARTBEAT_SECONDS",
            "soon",
            "KITAPP_BEAT_HEARTBEAT_SECONDS must be an integer",
        ),
    ],
)
def test_malformed_values_name_their_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_with(**{name: value})
    assert message in str(info.value)
    assert str(info.value).startswith(name)


def test_errors_never_show_passwords() -> None:
    with pytest.raises(ConfigError) as info:
        settings_with(KITAPP_BROKER_URLS="http://user:topsecret@h/v")
    assert "topsecret" not in str(info.value)


def test_redacted_hides_passwords() -> None:
    s = settings_with(KITAPP_BROKER_URLS="amqp://kit:secret@r1/v;amqp://kit:secret@[::1]:5673/v")
    shown = s.redacted()
    assert shown["broker_urls"] == ["amqp://kit:***@r1/v", "amqp://kit:***@[::1]:5673/v"]
    assert shown["result_backend"] == "redis://:***@redis:6379/0"
    assert "secret" not in repr(shown) and "hunter2" not in repr(shown)


def test_redact_url_without_password_is_unchanged() -> None:
    assert redact_url("redis://localhost:6379/0") == "redis://localhost:6379/0"
    assert redact_url("rpc://") == "rpc://"


TLS_URLS = "amqps://kit:secret@10.0.0.1:5671/kitapp;amqps://kit:secret@10.0.0.2:5671/kitapp"


def test_amqps_urls_take_the_broker_ca_file_and_tls_name() -> None:
    s = settings_with(
        KITAPP_BROKER_URLS=TLS_URLS,
        KITAPP_BROKER_CA_FILE="/etc/kitapp/ca.crt",
        KITAPP_BROKER_TLS_NAME="rabbitmq.cluster",
    )
    assert (s.broker_ca_file, s.broker_tls_name) == ("/etc/kitapp/ca.crt", "rabbitmq.cluster")
    plain = settings_with(KITAPP_BROKER_TLS_NAME="rabbitmq.cluster")
    assert (plain.broker_ca_file, plain.broker_tls_name) == (None, None)  # amqp:// has no TLS


def test_one_amqps_url_may_verify_the_host_of_its_url() -> None:
    s = settings_with(
        KITAPP_BROKER_URLS="amqps://kit:secret@10.0.0.1:5671/kitapp",
        KITAPP_BROKER_CA_FILE="/etc/kitapp/ca.crt",
    )
    assert s.broker_tls_name is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"KITAPP_BROKER_URLS": TLS_URLS}, "KITAPP_BROKER_CA_FILE is required"),
        (
            {"KITAPP_BROKER_URLS": TLS_URLS, "KITAPP_BROKER_CA_FILE": "/etc/kitapp/ca.crt"},
            "KITAPP_BROKER_TLS_NAME is required with more than one amqps://",
        ),
        (
            {"KITAPP_BROKER_URLS": TLS_URLS, "KITAPP_BROKER_CA_FILE": "ca.crt"},
            "KITAPP_BROKER_CA_FILE must be an absolute path",
        ),
        (
            {"KITAPP_BROKER_URLS": "amqp://u:p@a/v;amqps://u:p@b/v"},
            "all amqp:// or all amqps://",
        ),
    ],
)
def test_bad_tls_settings_name_the_variable(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_with(**overrides)
