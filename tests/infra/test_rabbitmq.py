"""The broker: RabbitMQ running, the app's vhost/user/permissions in place, guest gone."""

from __future__ import annotations

import json
import re
import shlex

import pytest
from cluster_runs import hosts_in

testinfra_hosts = ["ansible://rabbitmq"]


def rabbitmqctl_json(host, *args: str) -> list[dict]:
    with host.sudo():
        out = host.check_output("rabbitmqctl --quiet --formatter json " + " ".join(args))
    return json.loads(out)


def test_rabbitmq_server_is_running_and_enabled(host) -> None:
    service = host.service("rabbitmq-server")
    assert service.is_running
    assert service.is_enabled


def listens_everywhere(host, port: int) -> bool:
    return (
        host.socket(f"tcp://0.0.0.0:{port}").is_listening
        or host.socket(f"tcp://:::{port}").is_listening
    )


def test_clients_reach_amqp_or_only_amqps_as_the_inventory_chose(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    plain, tls = int(hv["rabbitmq_amqp_port"]), int(hv["rabbitmq_tls_port"])
    if hv["rabbitmq_tls_enabled"]:
        assert listens_everywhere(host, tls)
        assert not listens_everywhere(host, plain)  # plain AMQP for local tools only
        assert host.socket(f"tcp://127.0.0.1:{plain}").is_listening
    else:
        assert listens_everywhere(host, plain)
        assert not listens_everywhere(host, tls)


# Run on an app host: a TLS handshake with the broker, verified against the installed CA, for the
# server name argv[3] (or, with "-", no name check, as Celery does with no broker_use_ssl); prints
# the TLS version, or the verification error. The CA file argv[4], or "-" for the system store.
TLS_HANDSHAKE = """
import socket, ssl, sys
context = ssl.create_default_context(cafile=None if sys.argv[4] == "-" else sys.argv[4])
context.check_hostname = sys.argv[3] != "-"
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as raw:
        name = None if sys.argv[3] == "-" else sys.argv[3]
        with context.wrap_socket(raw, server_hostname=name) as tls:
            print(tls.version())
except ssl.SSLCertVerificationError as exc:
    print("REFUSED", exc.verify_message)
"""


def test_broker_certificate_verifies_for_its_own_address_only(
    host, hosts, kit_vars, web_hosts, worker_hosts
) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    if not hv["rabbitmq_tls_enabled"]:
        assert not listens_everywhere(host, int(hv["rabbitmq_tls_port"]))
        return
    client_name = (web_hosts + worker_hosts)[0]  # an app host (a worker-only site has no web)
    client = hosts[client_name]
    ca = kit_vars[client_name]["celery_app_broker_ca_file"]
    other = next(v["cluster_address"] for v in kit_vars.values() if v is not hv)

    def handshake(server_name: str) -> str:
        return client.check_output(
            f"python3 -c {shlex.quote(TLS_HANDSHAKE)} {hv['cluster_address']} "
            f"{hv['rabbitmq_tls_port']} {server_name} {ca}"
        )

    assert handshake(hv["cluster_address"]) in ("TLSv1.3", "TLSv1.2")
    assert handshake(other).startswith("REFUSED")


def test_projects_naming_no_ca_verify_the_broker_against_the_system_trust_store(
    host, hosts, kit_vars, web_hosts, worker_hosts
) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    for name in web_hosts[:1] + worker_hosts[:1]:  # each kind of app host the site has
        client, cv = hosts[name], kit_vars[name]
        if not hv["rabbitmq_tls_enabled"]:
            assert not client.file(cv["celery_app_broker_ca_system_file"]).exists
            continue
        out = client.check_output(
            f"python3 -c {shlex.quote(TLS_HANDSHAKE)} {hv['cluster_address']} "
            f"{hv['rabbitmq_tls_port']} - -"
        )
        assert out in ("TLSv1.3", "TLSv1.2"), f"{name}: {out}"


def test_app_vhosts_exist(host, kit_vars) -> None:
    wanted = set(kit_vars[host.backend.get_hostname()]["rabbitmq_vhosts"])
    present = {v["name"] for v in rabbitmqctl_json(host, "list_vhosts", "name")}
    assert wanted <= present


def test_guest_user_is_absent(host) -> None:
    users = {u["user"] for u in rabbitmqctl_json(host, "list_users")}
    assert "guest" not in users


def test_each_user_has_exactly_the_permissions_it_was_given(host, kit_vars) -> None:
    configured = kit_vars[host.backend.get_hostname()]["rabbitmq_users"]
    wanted = {
        (user["name"], p["vhost"], p["configure_priv"], p["write_priv"], p["read_priv"])
        for user in configured
        for p in user.get("permissions", [])
    }
    no_access = ("^$", "^$", "^$")  # what RabbitMQ records for a user given no permissions
    actual = {
        (user["name"], p["vhost"], p["configure"], p["write"], p["read"])
        for user in configured
        for p in rabbitmqctl_json(host, "list_user_permissions", user["name"])
        if (p["configure"], p["write"], p["read"]) != no_access
    }
    assert actual == wanted


@pytest.mark.parametrize("tag", ["administrator", "management"])
def test_app_users_have_no_admin_tags_unless_configured(host, kit_vars, tag) -> None:
    configured = {
        u["name"]: set(u.get("tags", []))
        for u in kit_vars[host.backend.get_hostname()]["rabbitmq_users"]
    }
    actual = {u["user"]: set(u["tags"]) for u in rabbitmqctl_json(host, "list_users")}
    for name, tags in configured.items():
        assert (tag in actual[name]) == (tag in tags), name


def test_every_broker_is_a_running_node_of_one_cluster(host, kit_vars) -> None:
    brokers = sorted(name for name, hv in kit_vars.items() if "rabbitmq" in hv["groups"])
    with host.sudo():
        status = json.loads(
            host.check_output("rabbitmqctl --quiet cluster_status --formatter json")
        )
    assert sorted(node.split("@", 1)[1] for node in status["running_nodes"]) == brokers


def test_open_file_limit_is_raised(host, kit_vars) -> None:
    wanted = kit_vars[host.backend.get_hostname()]["rabbitmq_nofile_limit"]
    with host.sudo():
        limit = host.check_output("systemctl show rabbitmq-server --property=LimitNOFILE")
    assert limit == f"LimitNOFILE={wanted}"


def test_management_api_listens_on_its_address_only(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    port = hv["rabbitmq_management_port"]
    assert host.socket(f"tcp://{hv['rabbitmq_management_ip']}:{port}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening


def test_management_api_refuses_anonymous_access(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    url = f"http://{hv['rabbitmq_management_ip']}:{hv['rabbitmq_management_port']}/api/overview"
    probe = f"""python3 - <<'EOF'
import urllib.error, urllib.request
try:
    urllib.request.urlopen('{url}', timeout=5)
    print(200)
except urllib.error.HTTPError as err:
    print(err.code)
EOF"""
    assert host.check_output(probe) == "401"


def test_broker_policies_are_the_configured_ones(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    policies = {
        (p["vhost"], p["name"]): json.loads(p["definition"])
        if isinstance(p["definition"], str)
        else p["definition"]
        for vhost in hv["rabbitmq_vhosts"]
        for p in rabbitmqctl_json(host, "list_policies", "-p", vhost)
    }
    wanted = {
        (p["vhost"], p["name"]): p["tags"]
        for p in hv["rabbitmq_policies"]
        if p.get("state", "present") == "present"
    }
    assert policies == wanted


def test_app_queue_has_the_configured_queue_type(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    queues = {
        q["name"]: q["type"]
        for q in rabbitmqctl_json(
            host, "list_queues", "-p", hv["kitapp_broker_vhost"], "name", "type"
        )
    }
    assert queues[hv["kitapp_default_queue"]] == hv["kitapp_queue_type"]


def test_quorum_queue_has_a_member_on_every_broker(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    if hv["kitapp_queue_type"] != "quorum":
        pytest.skip("classic queues: a single broker")
    brokers = sorted(name for name, v in kit_vars.items() if "rabbitmq" in v["groups"])
    with host.sudo():
        status = json.loads(
            host.check_output(
                f"rabbitmq-queues --quiet --formatter json quorum_status "
                f"-p {hv['kitapp_broker_vhost']} {hv['kitapp_default_queue']}"
            )
        )
    assert sorted(member["Node Name"].split("@", 1)[1] for member in status) == brokers


def test_each_queue_of_the_app_vhost_has_the_highest_priority_policy_matching_it(
    host, kit_vars
) -> None:
    """Task queues dead-letter, the dead-letter queue does not, Celery's event and reply queues
    (which expire messages) only have the length limit."""
    hv = kit_vars[host.backend.get_hostname()]
    vhost = hv["kitapp_broker_vhost"]
    queues = {
        q["name"]: q["policy"]
        for q in rabbitmqctl_json(host, "list_queues", "-p", vhost, "name", "policy")
    }
    policies = [
        p
        for p in hv["rabbitmq_policies"]
        if p.get("state", "present") == "present" and p["vhost"] == vhost
    ]

    def expected(queue: str) -> str:
        matching = [p for p in policies if re.search(p["pattern"], queue)]
        return max(matching, key=lambda p: p.get("priority", 0))["name"]

    dead_letters = hv["celery_app_dead_letter_queue"]
    assert dead_letters in queues
    assert set(hv["kitapp_task_queues"]) <= set(queues)
    assert len(queues) > len(hv["kitapp_task_queues"]) + 1  # Celery's own queues are there too
    assert queues == {name: expected(name) for name in queues}
    task_policy = {p["name"]: p for p in policies}[queues[hv["kitapp_task_queues"][0]]]
    assert task_policy["tags"]["dead-letter-exchange"] == dead_letters
    assert (
        "dead-letter-exchange" not in {p["name"]: p for p in policies}[queues[dead_letters]]["tags"]
    )


def test_dead_letter_exchange_routes_to_a_durable_replicated_queue(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    vhost, dead_letters = hv["kitapp_broker_vhost"], hv["celery_app_dead_letter_queue"]
    (queue,) = [
        q
        for q in rabbitmqctl_json(host, "list_queues", "-p", vhost, "name", "type", "durable")
        if q["name"] == dead_letters
    ]
    assert queue["durable"] is True
    assert queue["type"] == hv["celery_app_dead_letter_queue_type"]
    bindings = rabbitmqctl_json(
        host, "list_bindings", "-p", vhost, "source_name", "destination_name", "destination_kind"
    )
    assert {
        "source_name": dead_letters,
        "destination_name": dead_letters,
        "destination_kind": "queue",
    } in bindings


def test_consumer_timeout_is_the_one_derived_from_the_worker_groups(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    with host.sudo():
        value = host.check_output(
            "rabbitmqctl --quiet eval 'application:get_env(rabbit, consumer_timeout).'"
        )
    assert value == f"{{ok,{int(hv['rabbitmq_consumer_timeout_ms'])}}}"
    longest = max(int(s) for s in hv["kit_worker_group_unacked_seconds"].values())
    assert int(hv["rabbitmq_consumer_timeout_ms"]) > longest * 1000


def test_worker_connections_get_the_brokers_heartbeat_timeout(
    hosts, kit_vars, worker_hosts
) -> None:
    """A worker asks for Celery's 120 s and gets the brokers' shorter timeout; the broker drops a
    worker whose link went silent after about twice it (the watchdog's fault test)."""
    broker = hosts_in(kit_vars, "rabbitmq")[0]
    heartbeat = int(kit_vars[broker]["rabbitmq_heartbeat_seconds"])
    vhost = kit_vars[broker]["kitapp_broker_vhost"]
    worker_addresses = {kit_vars[name]["cluster_address"] for name in worker_hosts}
    # One node lists the whole cluster's connections (text output: peers as dotted addresses).
    with hosts[broker].sudo():
        listing = hosts[broker].check_output(
            f"rabbitmqctl --quiet list_connections -p {vhost} --no-table-headers peer_host timeout"
        )
    rows = [line.split() for line in listing.splitlines() if line.strip()]
    timeouts = [int(timeout) for peer, timeout in rows if peer in worker_addresses]
    # Each worker has a consumer connection with heartbeats; its other connections have none.
    assert timeouts.count(heartbeat) >= len(worker_addresses), timeouts
    assert set(timeouts) <= {0, heartbeat}, timeouts
