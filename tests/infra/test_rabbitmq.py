"""The broker: RabbitMQ running, the app's vhost/user/permissions in place, guest gone."""

from __future__ import annotations

import json

import pytest

testinfra_hosts = ["ansible://rabbitmq"]


def rabbitmqctl_json(host, *args: str) -> list[dict]:
    with host.sudo():
        out = host.check_output("rabbitmqctl --quiet --formatter json " + " ".join(args))
    return json.loads(out)


def test_rabbitmq_server_is_running_and_enabled(host) -> None:
    service = host.service("rabbitmq-server")
    assert service.is_running
    assert service.is_enabled


def test_amqp_port_listens(host, kit_vars) -> None:
    port = kit_vars[host.backend.get_hostname()]["rabbitmq_amqp_port"]
    assert (
        host.socket(f"tcp://0.0.0.0:{port}").is_listening
        or host.socket(f"tcp://:::{port}").is_listening
    )


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
    actual = {
        (user["name"], p["vhost"], p["configure"], p["write"], p["read"])
        for user in configured
        for p in rabbitmqctl_json(host, "list_user_permissions", user["name"])
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
