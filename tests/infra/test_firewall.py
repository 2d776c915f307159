"""nftables: drop by default; broker and result-store ports open to cluster hosts only, Erlang
distribution and the management API to the other brokers only;
gunicorn's TCP listener open to the other web hosts only.

The control node running these tests is not a cluster host, so it plays the outsider.
"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

from cluster_runs import hosts_in

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


def reachable_ports(address: str, ports: list[int]) -> list[int]:
    """The ports of the list that accept a connection, probed at once (a dropped probe waits
    for its timeout)."""
    with ThreadPoolExecutor(max_workers=max(1, len(ports))) as pool:
        opened = list(pool.map(lambda port: reachable(address, port), ports))
    return [port for port, ok in zip(ports, opened, strict=True) if ok]


def test_firewall_drops_incoming_traffic_by_default(host) -> None:
    with host.sudo():
        chain = host.check_output("nft list chain inet celerykit input")
    assert "hook input priority filter; policy drop;" in chain


def test_firewall_rules_load_at_boot(host) -> None:
    assert host.service("nftables").is_enabled


def test_ufw_of_earlier_kit_versions_is_gone(host) -> None:
    assert not host.package("ufw").is_installed


def test_host_outside_the_cluster_cannot_open_cluster_ports(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    ports = sorted(
        port
        for group in hv["groups"]
        for name in CLUSTER_ONLY.get(group, [])
        for port in single_ports(hv[name])
    )
    assert reachable_ports(hv["cluster_address"], ports) == []


def test_cluster_host_can_open_the_broker_port(host, kit_vars) -> None:
    brokers = [v for v in kit_vars.values() if "rabbitmq" in v["groups"]]
    target = brokers[0]
    port = target["rabbitmq_tls_port" if target["rabbitmq_tls_enabled"] else "rabbitmq_amqp_port"]
    reached = can_open(host, target["cluster_address"], port)
    assert reached, f"{host.backend.get_hostname()} cannot reach the broker"


def can_open(host, address: str, port: int) -> bool:
    probe = (
        f"python3 -c \"import socket; socket.create_connection(('{address}', {port}), timeout=3)\""
    )
    return host.run(probe).rc == 0


def test_only_brokers_reach_the_brokers_erlang_distribution_port(hosts, kit_vars) -> None:
    """The Erlang distribution port lets whoever has the cookie run code on a broker: the other
    brokers reach it, workers and web hosts do not."""
    brokers = hosts_in(kit_vars, "rabbitmq")
    target = kit_vars[brokers[0]]
    port = single_ports(target["rabbitmq_erlang_ports"])[0]
    others = sorted(n for n, v in kit_vars.items() if "rabbitmq" not in v["groups"])
    assert others, "no cluster host outside the rabbitmq group to try from"
    reached = {n: can_open(hosts[n], target["cluster_address"], port) for n in others}
    assert reached == dict.fromkeys(others, False)
    if len(brokers) > 1:
        assert can_open(hosts[brokers[1]], target["cluster_address"], port)
