"""Each failure mode the kit alerts on, caused for real on the cluster: its alert reaches
Alertmanager, and clears once the fault is undone (the rules: ansible/group_vars/all.yml)."""

from __future__ import annotations

import shlex
import time

from app_processes import AppProcesses
from cluster_runs import redis_operator_cli, wait_until

# Scrape and evaluation every 5 s and `for: 20s` in the Vagrant inventory; a condition that must
# first fill a window (beat: three heartbeat periods) takes longer.
FIRE_TIMEOUT = 120
CLEAR_TIMEOUT = 120
DRAIN_TIMEOUT = 240


def hosts_of(kit_vars: dict, group: str) -> list[str]:
    return sorted(n for n, v in kit_vars.items() if group in v["groups"])


def test_memory_alarm_on_a_broker_fires_and_clears(hosts, kit_vars, alerts) -> None:
    name = hosts_of(kit_vars, "rabbitmq")[-1]
    broker = hosts[name]
    watermark = broker.check_output(
        "rabbitmqctl --quiet eval 'vm_memory_monitor:get_vm_memory_high_watermark().'"
    )
    float(watermark)  # a fraction, restored below
    broker.run_expect([0], "rabbitmqctl --quiet set_vm_memory_high_watermark 0.0001")
    try:
        fired = alerts.wait_firing("KitBrokerMemoryAlarm", FIRE_TIMEOUT, host=name)
    finally:
        broker.run_expect([0], f"rabbitmqctl --quiet set_vm_memory_high_watermark {watermark}")
    cleared = alerts.wait_cleared("KitBrokerMemoryAlarm", CLEAR_TIMEOUT, host=name)
    print(f"memory alarm on {name}: fired after {fired:.0f} s, cleared {cleared:.0f} s after")


def test_disk_alarm_on_a_broker_fires_and_clears(hosts, kit_vars, alerts) -> None:
    name = hosts_of(kit_vars, "rabbitmq")[-1]
    broker = hosts[name]
    limit = int(
        broker.check_output("rabbitmqctl --quiet eval 'rabbit_disk_monitor:get_disk_free_limit().'")
    )
    broker.run_expect([0], "rabbitmqctl --quiet set_disk_free_limit 100000GB")
    try:
        alerts.wait_firing("KitBrokerDiskAlarm", FIRE_TIMEOUT, host=name)
    finally:
        broker.run_expect([0], f"rabbitmqctl --quiet set_disk_free_limit {limit}")
    alerts.wait_cleared("KitBrokerDiskAlarm", CLEAR_TIMEOUT, host=name)


def test_broker_node_down_fires_and_clears(hosts, kit_vars, alerts) -> None:
    name = hosts_of(kit_vars, "rabbitmq")[-1]
    broker = hosts[name]
    broker.run_expect([0], "systemctl stop rabbitmq-server")
    try:
        alerts.wait_firing("KitBrokerNodesMissing", FIRE_TIMEOUT)
        alerts.wait_firing("KitTargetDown", FIRE_TIMEOUT, job="rabbitmq", host=name)
    finally:
        broker.run_expect([0], "systemctl start rabbitmq-server")
    alerts.wait_cleared("KitBrokerNodesMissing", CLEAR_TIMEOUT)
    alerts.wait_cleared("KitTargetDown", CLEAR_TIMEOUT, job="rabbitmq", host=name)


def test_every_worker_stopped_with_a_backlog_fires_and_clears_losing_nothing(
    hosts, kit_vars, worker_hosts, alerts, new_batch, report
) -> None:
    workers = {name: AppProcesses(hosts[name], kit_vars[name]) for name in worker_hosts}
    queue = kit_vars[worker_hosts[0]]["kitapp_default_queue"]
    group = kit_vars[worker_hosts[0]]["celery_worker_groups"][0]["name"]
    for processes in workers.values():
        processes.stop(*processes.workers())
    try:
        batch = new_batch(seconds=0.1)
        batch.submit(5)
        fault_at = time.monotonic()
        alerts.wait_firing("KitQueueWithoutConsumers", FIRE_TIMEOUT, queue=queue)
        alerts.wait_firing("KitWorkersMissing", FIRE_TIMEOUT, worker_group=group)
    finally:
        for processes in workers.values():
            processes.start(*processes.workers())
    alerts.wait_cleared("KitQueueWithoutConsumers", CLEAR_TIMEOUT, queue=queue)
    alerts.wait_cleared("KitWorkersMissing", CLEAR_TIMEOUT, worker_group=group)
    outcome, ledger = batch.drain_to_outcome(
        "every worker stopped with a backlog (alerts)",
        fault_at=fault_at,
        recovery_seconds=None,
        note="KitQueueWithoutConsumers and KitWorkersMissing fired, then cleared",
        timeout=DRAIN_TIMEOUT,
    )
    report(outcome)
    assert not batch.failures, batch.failures
    assert outcome.lost == 0, ledger


def redis_operator(hosts, kit_vars) -> tuple[str, object, str]:
    """(name, host, redis-cli command line) of the result store, as its default (operators')
    user, the password read on the host (redis_operator_cli)."""
    (name,) = hosts_of(kit_vars, "redis")
    return name, hosts[name], redis_operator_cli(kit_vars[name])


def redis_info(redis, cli: str, section: str, field: str) -> int:
    info = redis.check_output(f"{cli} info {section}")
    return int(next(line.split(":")[1] for line in info.split() if line.startswith(f"{field}:")))


def test_redis_near_its_maxmemory_fires_and_clears(hosts, kit_vars, alerts) -> None:
    name, redis, cli = redis_operator(hosts, kit_vars)
    # Lower the ceiling to just above what Redis holds (about 93 % used), then put it back.
    used = redis_info(redis, cli, "memory", "used_memory")
    redis.run_expect([0], f"{cli} config set maxmemory {int(used / 0.93)}")
    try:
        alerts.wait_firing("KitRedisMemoryNearMax", FIRE_TIMEOUT, host=name)
    finally:
        redis.run_expect([0], f"{cli} config set maxmemory {kit_vars[name]['redis_maxmemory']}")
    alerts.wait_cleared("KitRedisMemoryNearMax", CLEAR_TIMEOUT, host=name)
    assert not alerts.is_firing("KitRedisEvictions"), "the test made Redis evict keys"


# Filler keys, in a database the kit does not use, with a TTL far shorter than any result's.
FILLER_DB = 15
FILLER_KEYS = 64
FILLER_BYTES = 65536


def test_redis_evicting_keys_fires_and_clears_evicting_no_result(hosts, kit_vars, alerts) -> None:
    """Redis at its ceiling evicts: the filler goes first (volatile-ttl while the test runs: the
    shortest TTL), so every eviction counted is a filler key and no task result is lost."""
    name, redis, cli = redis_operator(hosts, kit_vars)
    hv = kit_vars[name]
    policy = redis.check_output(f"{cli} config get maxmemory-policy").split()[-1]
    assert policy == hv["redis_maxmemory_policy"], policy
    evicted_before = redis_info(redis, cli, "stats", "evicted_keys")
    used = redis_info(redis, cli, "memory", "used_memory")
    fill = (
        f"v=$(head -c {FILLER_BYTES} /dev/zero | tr '\\0' x); for i in $(seq {FILLER_KEYS}); do "
        f'{cli} -n {FILLER_DB} set kit-test-filler-$i "$v" ex 600 > /dev/null || exit 1; done'
    )
    redis.run_expect([0], f"{cli} config set maxmemory-policy volatile-ttl")
    try:
        # Room for about a quarter of the filler: the rest is written by evicting filler.
        redis.run_expect(
            [0], f"{cli} config set maxmemory {used + FILLER_KEYS * FILLER_BYTES // 4}"
        )
        redis.run_expect([0], f"bash -c {shlex.quote(fill)}")
        evicted = redis_info(redis, cli, "stats", "evicted_keys") - evicted_before
        kept = int(redis.check_output(f"{cli} -n {FILLER_DB} dbsize"))
        alerts.wait_firing("KitRedisEvictions", FIRE_TIMEOUT, host=name)
    finally:
        redis.run_expect([0], f"{cli} config set maxmemory {hv['redis_maxmemory']}")
        redis.run_expect([0], f"{cli} config set maxmemory-policy {policy}")
        redis.run_expect([0], f"{cli} -n {FILLER_DB} flushdb")
    assert evicted > 0, "nothing was evicted"
    assert evicted == FILLER_KEYS - kept, f"{evicted} evicted, {FILLER_KEYS - kept} of the filler"
    alerts.wait_cleared("KitRedisEvictions", CLEAR_TIMEOUT, host=name)


def test_beat_stopped_fires_after_three_heartbeat_periods_and_clears(
    hosts, kit_vars, alerts
) -> None:
    (name,) = hosts_of(kit_vars, "celery_beat")
    processes = AppProcesses(hosts[name], kit_vars[name])
    beat = processes.service("beat")
    period = int(kit_vars[name]["kitapp_beat_heartbeat_seconds"])
    processes.stop(beat)
    try:
        silent = alerts.wait_firing("KitBeatSilent", 3 * period + FIRE_TIMEOUT)
    finally:
        processes.start(beat)
    assert silent >= 2 * period, f"fired {silent:.0f} s after beat stopped"
    alerts.wait_cleared("KitBeatSilent", period + CLEAR_TIMEOUT)


def test_no_alert_fires_once_every_fault_is_undone(alerts) -> None:
    """The cluster is healthy again after the scenarios above: nothing fires."""
    wait_until(lambda: not alerts.active(), CLEAR_TIMEOUT, "every alert to clear", 5)
