"""The brokers' rolling upgrade (ansible/upgrade-brokers.yml): a jump RabbitMQ cannot make is
refused before any node is touched, and the one-node-at-a-time procedure (quorum check, drain,
package, restart, rejoin, revive) loses no job while clients publish.

Run by hand (`make broker-upgrade-drill`), not in the cluster test: it restarts every broker.
Debian 13's archive has one RabbitMQ version (the one installed), so the drill is the same
procedure at the same version (-e rabbitmq_upgrade_restart=true): what it proves is the rolling
mechanics under load, not a version change.
"""

from __future__ import annotations

import time

from cluster_runs import assert_failed_naming, changed_per_host, hosts_in, playbook, run_playbook

DRAIN_TIMEOUT = 240


def rabbitmq_pid(host) -> int:
    return int(host.check_output("systemctl show --property MainPID --value rabbitmq-server"))


def test_a_jump_over_a_release_series_is_refused_before_any_broker_is_touched(
    inventory, hosts, kit_vars
) -> None:
    brokers = hosts_in(kit_vars, "rabbitmq")
    before = {name: rabbitmq_pid(hosts[name]) for name in brokers}
    version = hosts[brokers[0]].check_output("rabbitmq-diagnostics --quiet server_version")
    major, minor = (int(part) for part in version.split(".")[:2])
    skipping = f"{major}.{minor + 2}.0"
    run = run_playbook(
        inventory, "upgrade-brokers.yml", "-e", f"rabbitmq_upgrade_version={skipping}"
    )
    assert_failed_naming(run, "No broker was touched", f"skips the series {major}.{minor + 1}")
    assert "PLAY [Upgrade the brokers, one node at a time]" not in run.stdout
    assert {name: rabbitmq_pid(hosts[name]) for name in brokers} == before


def test_rolling_broker_restart_under_load_loses_no_job_and_restarts_each_node(
    inventory, hosts, kit_vars, new_batch, report
) -> None:
    brokers = hosts_in(kit_vars, "rabbitmq")
    before = {name: rabbitmq_pid(hosts[name]) for name in brokers}
    batch = new_batch(seconds=0.5)
    batch.submit(10)
    publisher = batch.submit_in_background(400, interval=0.25)  # keeps publishing through it
    fault_at = time.monotonic()
    output = playbook(inventory, "upgrade-brokers.yml", "-e", "rabbitmq_upgrade_restart=true")
    upgrade_seconds = time.monotonic() - fault_at
    publisher.join(timeout=300)
    batch.settle(
        report,
        f"brokers restarted one at a time by upgrade-brokers.yml ({len(brokers)} nodes)",
        fault_at=fault_at,
        recovery_seconds=round(upgrade_seconds, 1),
        note="each node drained (maintenance mode) before it stopped; clients fail over to the "
        "other broker URLs; recovery = the playbook's run",
        timeout=DRAIN_TIMEOUT,
    )
    after = {name: rabbitmq_pid(hosts[name]) for name in brokers}
    assert all(after[name] != before[name] for name in brokers), (before, after)
    assert output.count("TASK [Drain the node]") == len(brokers)

    # At the target and nothing asked: no node is touched, nothing changes.
    again = playbook(inventory, "upgrade-brokers.yml")
    changed = changed_per_host(again)
    assert set(brokers) <= set(changed) and not any(changed.values()), changed
    assert {name: rabbitmq_pid(hosts[name]) for name in brokers} == after
