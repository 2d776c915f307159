"""The brokers' blue/green move (ansible/move-brokers.yml): the site moves, under load, from its
brokers to a new cluster on other machines, here from Debian 12's RabbitMQ 3.10 to Debian 13's
4.0 (a jump no rolling upgrade can make), and loses no job.

Run by hand (`make broker-move-drill`), not in the cluster test: it needs a cluster of Debian 12
machines (`CELERYKIT_LXC_BOX=celerykit/debian12 make up`) and the drill's three new brokers
(vagrant/hosts.yml's `blue_green` machines, Debian 13), and the inventory of the move
(tests/broker_move/vagrant: the new brokers in rabbitmq, the old ones in rabbitmq_old).
"""

from __future__ import annotations

import time

import cluster_runs
from cluster_runs import changed_per_host, hosts_in, playbook

DRAIN_TIMEOUT = 300
STAGE = "KIT_BROKER_MOVE_STAGE"


def version(host) -> str:
    return host.check_output("rabbitmq-diagnostics --quiet server_version")


def test_brokers_moved_blue_green_under_load_lose_no_job(
    inventory, hosts, kit_vars, new_batch, report, monkeypatch
) -> None:
    old, new = hosts_in(kit_vars, "rabbitmq_old"), hosts_in(kit_vars, "rabbitmq")
    assert old and new, "run with --ansible-inventory=tests/broker_move/vagrant"
    old_version = version(hosts[old[0]])

    batch = new_batch(seconds=0.5)
    batch.submit(10)
    publisher = batch.submit_in_background(600, interval=0.25)  # publishes through the move
    started = time.monotonic()
    output = playbook(inventory, "move-brokers.yml")
    move_seconds = time.monotonic() - started
    publisher.join(timeout=300)
    new_version = version(hosts[new[0]])
    batch.settle(
        report,
        f"brokers moved blue/green, RabbitMQ {old_version} ({len(old)} nodes) -> "
        f"{new_version} ({len(new)} nodes)",
        fault_at=started,
        recovery_seconds=round(move_seconds, 1),
        note="new cluster federated from the old one; workers moved a batch at a time, then the "
        "web hosts; old brokers stopped once empty; recovery = move-brokers.yml's run",
        timeout=DRAIN_TIMEOUT,
    )
    assert old_version.split(".")[:2] != new_version.split(".")[:2], (old_version, new_version)
    for name in old:
        assert not hosts[name].service("rabbitmq-server").is_running, name
    assert "Wait until the old cluster's task and dead-letter queues are empty" in output

    # The move's end: the old brokers out of the inventory; site.yml removes the federation,
    # and a second run changes nothing.
    monkeypatch.setitem(cluster_runs.ANSIBLE_ENV, STAGE, "done")
    playbook(inventory, "site.yml")
    vhost = kit_vars[new[0]]["kitapp_broker_vhost"]
    upstreams = hosts[new[0]].check_output(
        f"rabbitmqctl --quiet list_parameters -p {vhost} --no-table-headers"
    )
    assert "federation-upstream" not in upstreams, upstreams
    again = playbook(inventory, "site.yml")
    changed = changed_per_host(again)
    assert changed and not any(changed.values()), changed
