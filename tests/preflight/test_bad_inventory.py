"""A bad inventory or a missing variable stops site.yml in its first play, before any host is
touched, with a message that names the problem.

The inventories here name hosts that do not exist: the checks run on the control node only, so
reaching a host at all would itself be a failure (UNREACHABLE) of the property under test.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SITE_VARS = ROOT / "ansible" / "inventories" / "vagrant" / "group_vars" / "all" / "main.yml"


def good_inventory() -> dict:
    def hosts(*names: str) -> dict:
        return {"hosts": {name: {} for name in names}}

    addresses = {
        "b1": "192.0.2.11",
        "b2": "192.0.2.12",
        "b3": "192.0.2.13",
        "w1": "192.0.2.21",
        "w2": "192.0.2.22",
        "web1": "192.0.2.31",
    }
    return {
        "all": {
            "hosts": {name: {"cluster_address": ip} for name, ip in addresses.items()},
            "children": {
                "rabbitmq": hosts("b1", "b2", "b3"),
                "redis": hosts("b1"),
                "celery_workers": hosts("w1", "w2"),
                "celery_beat": hosts("w1"),
                "web": hosts("web1"),
            },
        }
    }


# The secrets an inventory's vault holds, as ansible/secrets.yml generates them (kit_secrets).
VAULT_SECRETS = [
    f"vault_{name}"
    for name in yaml.safe_load((ROOT / "ansible" / "group_vars" / "all.yml").read_text())[
        "kit_secrets"
    ]
]


def write_vault(path: Path, password_file: Path, drop: str | None = None) -> None:
    """The inventory's vault.yml with test secrets, encrypted with the password in password_file."""
    path.write_text(yaml.safe_dump({name: "x" * 32 for name in VAULT_SECRETS if name != drop}))
    subprocess.run(
        [
            "ansible-vault",
            "encrypt",
            "--vault-password-file",
            str(password_file),
            "--encrypt-vault-id",
            "default",
            str(path),
        ],
        check=True,
        capture_output=True,
        cwd=ROOT / "ansible",
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible" / "ansible.cfg")},
    )


def run_site(
    tmp_path: Path,
    inventory: dict,
    drop_variable: str | None = None,
    drop_secret: str | None = None,
    vault_password: str = "right",
    set_variables: dict | None = None,
) -> str:
    """Runs site.yml against the inventory; returns its output (it must fail). The inventory's
    vault is encrypted with "right"; the run decrypts it with vault_password."""
    inv_dir = tmp_path / "inventories" / "bad"
    (inv_dir / "group_vars" / "all").mkdir(parents=True)
    (inv_dir / "hosts.yml").write_text(yaml.safe_dump(inventory))
    site_vars = yaml.safe_load(SITE_VARS.read_text())
    if drop_variable:
        del site_vars[drop_variable]
    site_vars.update(set_variables or {})
    (inv_dir / "group_vars" / "all" / "main.yml").write_text(yaml.safe_dump(site_vars))
    (tmp_path / "right").write_text("right\n")
    (tmp_path / "given").write_text(vault_password + "\n")
    write_vault(inv_dir / "group_vars" / "all" / "vault.yml", tmp_path / "right", drop_secret)
    run = subprocess.run(
        ["ansible-playbook", "-i", str(inv_dir), "site.yml"],
        cwd=ROOT / "ansible",
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible" / "ansible.cfg"),
            "KIT_VAULT_PASSWORD_FILE": str(tmp_path / "given"),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0, f"site.yml accepted a bad inventory:\n{output[-3000:]}"
    return output


def assert_nothing_ran_on_hosts(output: str) -> None:
    assert "PLAY [Prepare every cluster host]" not in output, output[-3000:]
    assert "UNREACHABLE" not in output
    recap = re.findall(r"changed=(\d+)", output.split("PLAY RECAP", 1)[-1])
    assert recap and set(recap) == {"0"}, output[-2000:]


def test_good_inventory_passes_the_checks_and_only_then_reaches_for_hosts(tmp_path) -> None:
    output = run_site(tmp_path, good_inventory())
    assert "PLAY [Prepare every cluster host]" in output  # the checks passed ...
    assert "UNREACHABLE" in output  # ... and the next play tried the (fake) hosts


def test_beat_on_two_hosts_with_the_file_scheduler_is_refused(tmp_path) -> None:
    inventory = good_inventory()
    inventory["all"]["children"]["celery_beat"]["hosts"]["w2"] = {}
    output = run_site(tmp_path, inventory, set_variables={"celery_beat_scheduler": "file"})
    assert "Group 'celery_beat' must hold exactly one host" in output
    assert_nothing_ran_on_hosts(output)


def test_beat_on_two_hosts_with_redbeat_passes_the_checks(tmp_path) -> None:
    """One beat sends and the other stands by (RedBeat's lock): not refused."""
    inventory = good_inventory()
    inventory["all"]["children"]["celery_beat"]["hosts"]["w2"] = {}
    output = run_site(tmp_path, inventory, set_variables={"celery_beat_scheduler": "redbeat"})
    assert "Group 'celery_beat' must hold" not in output
    assert "PLAY [Prepare every cluster host]" in output, output[-3000:]


def test_even_number_of_brokers_with_quorum_queues_is_refused(tmp_path) -> None:
    inventory = good_inventory()
    inventory["all"]["hosts"]["b4"] = {"cluster_address": "192.0.2.14"}
    inventory["all"]["children"]["rabbitmq"]["hosts"]["b4"] = {}
    output = run_site(tmp_path, inventory)
    assert "quorum queues need an odd number of 3 or more brokers" in output
    assert_nothing_ran_on_hosts(output)


def test_worker_group_outlasting_the_brokers_consumer_timeout_is_refused(tmp_path) -> None:
    inventory = good_inventory()
    # 4 prefetched x 360 s hard limit = 1440 s may pass between a delivery and its ack.
    inventory["all"]["hosts"]["b1"]["rabbitmq_consumer_timeout_ms"] = 1_200_000
    output = run_site(tmp_path, inventory)
    assert "Worker group 'default' on w1 may hold a task's message unacknowledged" in output
    assert "for 1440 s (prefetch_multiplier x time_limit), not below the brokers'" in output
    assert "consumer_timeout of 1200 s" in output
    assert_nothing_ran_on_hosts(output)


@pytest.mark.parametrize("variable", ["kitapp_broker_password", "kit_rabbitmq_erlang_cookie"])
def test_missing_required_variable_is_named(tmp_path, variable) -> None:
    output = run_site(tmp_path, good_inventory(), drop_variable=variable)
    assert f"Required variable '{variable}' is not defined" in output
    assert_nothing_ran_on_hosts(output)


def test_host_without_cluster_address_is_named(tmp_path) -> None:
    inventory = good_inventory()
    del inventory["all"]["hosts"]["w2"]["cluster_address"]
    output = run_site(tmp_path, inventory)
    assert "Host w2 has no valid cluster_address" in output
    assert_nothing_ran_on_hosts(output)


def test_worker_only_inventory_passes_the_checks(tmp_path) -> None:
    """No web hosts: workers, beat, broker and result store are a site of their own."""
    inventory = good_inventory()
    del inventory["all"]["children"]["web"]
    del inventory["all"]["hosts"]["web1"]
    output = run_site(tmp_path, inventory)
    assert "PLAY [Prepare every cluster host]" in output, output[-3000:]
    assert "UNREACHABLE" in output


def test_inventory_without_worker_hosts_is_refused(tmp_path) -> None:
    inventory = good_inventory()
    del inventory["all"]["children"]["celery_workers"]
    del inventory["all"]["children"]["celery_beat"]
    output = run_site(tmp_path, inventory)
    assert "The inventory has no host in group 'celery_workers'" in output
    assert_nothing_ran_on_hosts(output)


def test_missing_vault_secret_is_named(tmp_path) -> None:
    output = run_site(tmp_path, good_inventory(), drop_secret="vault_kit_flower_password")
    assert "vault_kit_flower_password" in output
    assert_nothing_ran_on_hosts(output)


def test_wrong_vault_password_is_refused_before_any_host_is_touched(tmp_path) -> None:
    output = run_site(tmp_path, good_inventory(), vault_password="wrong")
    assert "Decryption failed" in output, output[-2000:]
    assert "PLAY [Prepare every cluster host]" not in output
    assert "UNREACHABLE" not in output
