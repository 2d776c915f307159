"""Each failure mode the kit alerts on, caused for real on the cluster: its alert reaches
Alertmanager, and clears once the fault is undone (the rules: ansible/group_vars/all.yml)."""

from __future__ import annotations

import json
import shlex
import time

from app_processes import AppProcesses
from cluster_ops import children
from cluster_runs import (
    KeepGetting,
    front_end_url,
    hosts_in,
    prometheus_seconds,
    redis_operator_cli,
    wait_until,
)

# Scrape and evaluation every 5 s and `for: 20s` in the Vagrant inventory; a condition that must
# first fill a window (beat: three heartbeat periods) takes longer.
FIRE_TIMEOUT = 120
CLEAR_TIMEOUT = 120
DRAIN_TIMEOUT = 240


def test_memory_alarm_on_a_broker_fires_and_clears(hosts, kit_vars, alerts) -> None:
    name = hosts_in(kit_vars, "rabbitmq")[-1]
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
    name = hosts_in(kit_vars, "rabbitmq")[-1]
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
    name = hosts_in(kit_vars, "rabbitmq")[-1]
    broker = hosts[name]
    broker.run_expect([0], "systemctl stop rabbitmq-server")
    try:
        alerts.wait_firing("KitBrokerNodesMissing", FIRE_TIMEOUT)
        alerts.wait_firing("KitTargetDown", FIRE_TIMEOUT, job="rabbitmq", host=name)
    finally:
        broker.run_expect([0], "systemctl start rabbitmq-server")
    alerts.wait_cleared("KitBrokerNodesMissing", CLEAR_TIMEOUT)
    alerts.wait_cleared("KitTargetDown", CLEAR_TIMEOUT, job="rabbitmq", host=name)


# An nftables table of the test's own on the partitioned broker: every packet from or to the other
# brokers is dropped, as a network partition loses them. Each side notices within net_ticktime
# (60 s); pause_minority then pauses the lone node until it sees the majority again.
PARTITION_TABLE = "kit_test_partition"
PARTITION_TIMEOUT = 120


def partition_commands(peers: list[str]) -> list[str]:
    addresses = "{ " + ", ".join(peers) + " }"
    table = f"inet {PARTITION_TABLE}"
    return [
        f"nft add table {table}",
        f"nft 'add chain {table} input {{ type filter hook input priority -10; }}'",
        f"nft 'add chain {table} output {{ type filter hook output priority -10; }}'",
        f"nft 'add rule {table} input ip saddr {addresses} drop'",
        f"nft 'add rule {table} output ip daddr {addresses} drop'",
    ]


def cluster_whole(broker, size: int) -> bool:
    """Every node runs in the broker's cluster, and no partition is recorded (a node that did not
    pause would keep one: two halves that each took writes)."""
    status = json.loads(broker.check_output("rabbitmqctl --quiet cluster_status --formatter json"))
    return len(status["running_nodes"]) == size and not any(status["partitions"].values())


def test_a_broker_partitioned_from_its_peers_fires_and_clears_losing_nothing(
    hosts, kit_vars, alerts, new_batch, report
) -> None:
    names = hosts_in(kit_vars, "rabbitmq")
    name, others = names[-1], names[:-1]
    broker = hosts[name]
    batch = new_batch(seconds=0.1)
    for command in partition_commands([kit_vars[n]["cluster_address"] for n in others]):
        broker.run_expect([0], command)
    fault_at = time.monotonic()
    try:
        batch.submit(5)
        # The majority's nodes count the lost peer (the minority node pauses itself).
        fired = alerts.wait_firing(
            "KitBrokerPeersUnreachable", PARTITION_TIMEOUT + FIRE_TIMEOUT, host=others[0]
        )
    finally:
        broker.run_expect([0], f"nft delete table inet {PARTITION_TABLE}")
    healed_at = time.monotonic()
    wait_until(
        lambda: all(cluster_whole(hosts[n], len(names)) for n in names), 180, "the cluster to heal"
    )
    recovery = time.monotonic() - healed_at
    alerts.wait_cleared("KitBrokerPeersUnreachable", CLEAR_TIMEOUT)
    # Until the majority notices (net_ticktime), a submission can outlast the client's 15 s:
    # the broker's metadata changes (the web's queue declaration on a new connection) wait for
    # the unreachable node. Counted and reported; any other failure fails the test. (A web that
    # then accepts the job after its client left runs it under an id the client never saw.)
    timed_out = [f for f in batch.failures if "timed out" in f]
    batch.settle(
        report,
        f"{name} partitioned from the other brokers (alerts)",
        fault_at=fault_at,
        recovery_seconds=recovery,
        note=(
            f"KitBrokerPeersUnreachable fired after {fired:.0f} s; recovery: all nodes running; "
            f"{len(timed_out)} submissions timed out (15 s) and were sent again"
        ),
        timeout=DRAIN_TIMEOUT,
        expected_failures=timed_out,
    )


def test_consumers_frozen_mid_task_fire_unacked_too_long_and_clear_losing_nothing(
    hosts, kit_vars, worker_hosts, alerts, new_batch, report
) -> None:
    """Every worker's pool processes frozen (SIGSTOP), as a task stuck on I/O freezes one: the
    workers keep their connections and channels, take the jobs and acknowledge none."""
    pools = {}
    for name in worker_hosts:
        processes = AppProcesses(hosts[name], kit_vars[name])
        pools[name] = [
            child for w in processes.workers() for child in children(hosts[name], processes.pid(w))
        ]
        assert pools[name], f"no pool process on {name}"
    age = prometheus_seconds(kit_vars[worker_hosts[0]]["kit_alert_unacked_for"])
    for name, pids in pools.items():
        hosts[name].run_expect([0], f"kill -STOP {' '.join(map(str, pids))}")
    try:
        batch = new_batch(seconds=0.1)
        batch.submit(4)
        fault_at = time.monotonic()
        fired = alerts.wait_firing("KitUnackedTooLong", age + FIRE_TIMEOUT)
    finally:
        for name, pids in pools.items():
            hosts[name].run_expect([0], f"kill -CONT {' '.join(map(str, pids))}")
    assert fired >= age, f"fired {fired:.0f} s after the jobs were sent"
    alerts.wait_cleared("KitUnackedTooLong", CLEAR_TIMEOUT)
    batch.settle(
        report,
        "every pool process frozen mid-task (alerts)",
        fault_at=fault_at,
        recovery_seconds=None,
        note=f"KitUnackedTooLong fired {fired:.0f} s after the jobs were sent, then cleared",
        timeout=DRAIN_TIMEOUT,
    )


def test_server_errors_on_the_web_hosts_fire_and_clear(
    hosts, kit_vars, web_hosts, web_url, alerts
) -> None:
    """Every gunicorn stopped: nginx answers the app's requests 502 (its upstreams are the web
    hosts' gunicorns), and mtail counts them in nginx's access log."""
    web = {name: AppProcesses(hosts[name], kit_vars[name]) for name in web_hosts}
    urls = [front_end_url(kit_vars[name]) + "/healthz" for name in web_hosts]
    for processes in web.values():
        processes.stop(processes.service("gunicorn"))
    # Each web host asked about once a second.
    with KeepGetting(urls, 1 / len(urls), timeout=5) as client:
        try:
            for name in web_hosts:
                alerts.wait_firing("KitWebServerErrors", FIRE_TIMEOUT, host=name)
        finally:
            for processes in web.values():
                processes.start(processes.service("gunicorn"))
        for name in web_hosts:
            alerts.wait_cleared("KitWebServerErrors", CLEAR_TIMEOUT, host=name)
    answers = client.answers
    assert 502 in answers, sorted(set(answers))
    assert answers[-1] == 200, answers[-len(urls) :]


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
    batch.settle(
        report,
        "every worker stopped with a backlog (alerts)",
        fault_at=fault_at,
        recovery_seconds=None,
        note="KitQueueWithoutConsumers and KitWorkersMissing fired, then cleared",
        timeout=DRAIN_TIMEOUT,
    )


def redis_operator(hosts, kit_vars) -> tuple[str, object, str]:
    """(name, host, redis-cli command line) of the result store, as its default (operators')
    user, the password read on the host (redis_operator_cli)."""
    (name,) = hosts_in(kit_vars, "redis")
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


# Filler keys, in a database the kit does not use.
FILLER_DB = 15
FILLER_KEYS = 64
FILLER_BYTES = 65536


def filler_ttl(kit_vars) -> int:
    """Seconds, shorter than any key the kit keeps with a TTL, so that under volatile-ttl the
    filler is evicted first. Results and the ledger keep result_expires (a day); the shortest is
    RedBeat's lock (celery_beat_scheduler redbeat), renewed at least every max interval and
    expiring five of them after: never under four left."""
    beat_hv = kit_vars[hosts_in(kit_vars, "celery_beat")[0]]
    return 2 * int(beat_hv["celery_beat_max_interval"])


def test_redis_evicting_keys_fires_and_clears_evicting_no_result(hosts, kit_vars, alerts) -> None:
    """Redis at its ceiling evicts: the filler goes first (volatile-ttl while the test runs: the
    shortest TTL), so every eviction counted is a filler key and no kit key is lost."""
    name, redis, cli = redis_operator(hosts, kit_vars)
    hv = kit_vars[name]
    policy = redis.check_output(f"{cli} config get maxmemory-policy").split()[-1]
    assert policy == hv["redis_maxmemory_policy"], policy
    used = redis_info(redis, cli, "memory", "used_memory")
    evicted_keys = f"{cli} info stats | sed -n 's/^evicted_keys:\\([0-9]*\\).*/\\1/p'"
    # Written, counted and measured in one go: well inside the filler's TTL, so no filler key
    # has expired (rather than been evicted) by the time the database is counted.
    fill = (
        f"before=$({evicted_keys}); v=$(head -c {FILLER_BYTES} /dev/zero | tr '\\0' x); "
        f"for i in $(seq {FILLER_KEYS}); do {cli} -n {FILLER_DB} set kit-test-filler-$i "
        f'"$v" ex {filler_ttl(kit_vars)} > /dev/null || exit 1; done; '
        f"echo $(( $({evicted_keys}) - before )) $({cli} -n {FILLER_DB} dbsize)"
    )
    redis.run_expect([0], f"{cli} config set maxmemory-policy volatile-ttl")
    try:
        # Room for about a quarter of the filler: the rest is written by evicting filler.
        redis.run_expect(
            [0], f"{cli} config set maxmemory {used + FILLER_KEYS * FILLER_BYTES // 4}"
        )
        evicted, kept = map(int, redis.check_output(f"bash -c {shlex.quote(fill)}").split())
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
    """Beat stopped on every beat host (a standby would take over from one: see
    test_beat_failover.py)."""
    names = hosts_in(kit_vars, "celery_beat")
    beats = [AppProcesses(hosts[name], kit_vars[name]) for name in names]
    period = int(kit_vars[names[0]]["kitapp_beat_heartbeat_seconds"])
    # Scenarios before this one can leave it firing (every worker stopped or frozen for longer
    # than three periods: no heartbeat ran): it must be clear before beat stops.
    alerts.wait_cleared("KitBeatSilent", period + CLEAR_TIMEOUT)
    try:
        for processes in beats:
            processes.stop(processes.service("beat"))
        silent = alerts.wait_firing("KitBeatSilent", 3 * period + FIRE_TIMEOUT)
    finally:
        for processes in beats:
            processes.start(processes.service("beat"))
    # The window is three periods; the last heartbeat ran up to one period before beat stopped,
    # and increase() sees it leave the window a scrape early: measured 29.95 s with 15 s periods
    # and 5 s scrapes (the earlier bound, two periods, was 30).
    scrape = prometheus_seconds(kit_vars[names[0]]["prometheus_scrape_interval"])
    assert silent >= 2 * period - 2 * scrape, f"fired {silent:.0f} s after beat stopped"
    alerts.wait_cleared("KitBeatSilent", period + CLEAR_TIMEOUT)


def test_no_alert_fires_once_every_fault_is_undone(alerts) -> None:
    """The cluster is healthy again after the scenarios above: nothing fires."""
    wait_until(lambda: not alerts.active(), CLEAR_TIMEOUT, "every alert to clear", 5)
