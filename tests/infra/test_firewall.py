"""ufw: deny by default; broker, Erlang and result-store ports open to cluster hosts only;
gunicorn's TCP listener open to the other web hosts only.

The control node running these tests is not a cluster host, so it plays the outsider.
"""

from __future__ import annotations

import socket

testinfra_hosts = [
    "ansible://rabbitmq",
    "ansible://redis",
    "ansible://celery_workers",
    "ansible://web",
]

# Per group: the variables naming the ports only cluster hosts may open (each a port or a list).
CLUSTER_ONLY = {
    "rabbitmq": [
        "rabbitmq_amqp_port",
        "rabbitmq_tls_port",
        "rabbitmq_erlang_ports",
        "rabbitmq_management_port",
    ],
    "redis": ["redis_port"],
    "web": ["gunicorn_tcp_port"],
}


def single_ports(value) -> list[int]:
    """The single ports of a port variable (ranges "a:b" left out)."""
    values = value if isinstance(value, list) else [value]
    return [int(v) for v in values if ":" not in str(v)]


def reachable(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=3):
            return True
    except OSError:
        return False


def test_ufw_is_active_and_denies_incoming_by_default(host) -> None:
    with host.sudo():
        status = host.check_output("ufw status verbose")
    assert "Status: active" in status
    assert "Default: deny (incoming)" in status


def test_ufw_is_enabled_at_boot(host) -> None:
    assert host.service("ufw").is_enabled


def test_host_outside_the_cluster_cannot_open_cluster_ports(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    ports = sorted(
        port
        for group in hv["groups"]
        for name in CLUSTER_ONLY.get(group, [])
        for port in single_ports(hv[name])
    )
    assert [p for p in ports if reachable(hv["cluster_address"], p)] == []


def test_cluster_host_can_open_the_broker_port(host, kit_vars) -> None:
    brokers = [v for v in kit_vars.values() if "rabbitmq" in v["groups"]]
    target = brokers[0]
    port = target["rabbitmq_tls_port" if target["rabbitmq_tls_enabled"] else "rabbitmq_amqp_port"]
    probe = (
        'python3 -c "import socket; socket.create_connection('
        f"('{target['cluster_address']}', {port}), timeout=3)\""
    )
    assert host.run(probe).rc == 0, f"{host.backend.get_hostname()} cannot reach the broker"
