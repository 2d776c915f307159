"""The result store: Redis on loopback and the private address only, password required."""

from __future__ import annotations

from cluster_runs import redis_operator_cli

testinfra_hosts = ["ansible://redis"]


def test_redis_is_running_and_enabled(host) -> None:
    service = host.service("redis-server")
    assert service.is_running
    assert service.is_enabled


def test_redis_listens_on_its_bind_addresses_only(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    for address in hv["redis_bind_addresses"]:
        assert host.socket(f"tcp://{address}:{hv['redis_port']}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{hv['redis_port']}").is_listening


def test_redis_refuses_commands_without_the_password(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    out = host.run(f"redis-cli -h {hv['cluster_address']} -p {hv['redis_port']} ping")
    assert "NOAUTH" in out.stdout + out.stderr


def test_redis_configuration_is_readable_only_by_redis(host) -> None:
    conf = host.file("/etc/redis/redis.conf")
    assert conf.user == "redis"
    assert conf.mode == 0o600


def redis_config(host, hv: dict, name: str) -> str:
    """CONFIG GET as the server sees it; the password is read on the host, never passed in."""
    out = host.run(f"{redis_operator_cli(hv)} CONFIG GET {name}")
    assert out.rc == 0, out.stderr
    lines = out.stdout.split()
    assert lines[0] == name, out.stdout
    return lines[1]


def test_redis_memory_ceiling_eviction_and_persistence_are_set(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    assert redis_config(host, hv, "maxmemory-policy") == hv["redis_maxmemory_policy"]
    assert int(redis_config(host, hv, "maxmemory")) > 0
    assert redis_config(host, hv, "appendonly") == ("yes" if hv["redis_appendonly"] else "no")
