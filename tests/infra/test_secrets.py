"""Secrets never leave their files (0600; the app's env file 0640 root:app): not in any
process's command line, not in any log on the hosts, not in Ansible's output of the provisioning
runs.

The secrets are the inventory's (from its vault, resolved by Ansible on the control node); logs
are fetched and searched here, so no secret is ever put on a command line to search for it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

testinfra_hosts = [
    "ansible://rabbitmq",
    "ansible://redis",
    "ansible://celery_workers",
    "ansible://web",
]
ROOT = Path(__file__).resolve().parents[2]
LOG_DIRS = ["/var/log"]


@pytest.fixture(scope="module")
def secrets(kit_secrets: dict[str, str]) -> dict[str, str]:
    assert kit_secrets and all(len(value) >= 16 for value in kit_secrets.values()), "no secrets"
    return kit_secrets


def leaked(text: str, secrets: dict[str, str]) -> list[str]:
    return sorted(name for name, value in secrets.items() if value in text)


def test_no_secret_in_any_process_command_line(host, secrets) -> None:
    with host.sudo():
        processes = host.check_output("ps -eo args")
    assert leaked(processes, secrets) == []


def test_no_secret_in_any_log_file(host, secrets) -> None:
    with host.sudo():
        files = host.check_output(
            "find /var/log -type f -size -20M ! -name '*.gz' ! -name '*.journal' ! -name lastlog"
            " ! -name wtmp ! -name btmp"
        ).split()
        found = {
            path: leaked(host.file(path).content.decode(errors="replace"), secrets)
            for path in files
        }
    assert {path: names for path, names in found.items() if names} == {}


def test_no_secret_in_the_journal(host, secrets) -> None:
    with host.sudo():
        journal = host.check_output("journalctl --no-pager -o cat")
    assert leaked(journal, secrets) == []


def test_no_secret_in_ansible_output_of_the_provisioning_runs(secrets) -> None:
    logs = sorted((ROOT / "tests" / "results").glob("provision-*.log"))
    if not logs:
        pytest.skip("no provisioning log here (tests/cluster.sh writes them)")
    assert {log.name: leaked(log.read_text(), secrets) for log in logs} == {
        log.name: [] for log in logs
    }
