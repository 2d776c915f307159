"""supervisor from the distribution, restarted by systemd, every program RUNNING."""

from __future__ import annotations

testinfra_hosts = ["ansible://celery_workers", "ansible://web"]


def test_supervisor_comes_from_the_distribution_package(host) -> None:
    assert host.package("supervisor").is_installed
    assert not host.exists("/usr/local/bin/supervisord")


def test_supervisor_is_running_and_enabled(host) -> None:
    service = host.service("supervisor")
    assert service.is_running
    assert service.is_enabled


def test_systemd_restarts_supervisor_when_it_dies(host) -> None:
    with host.sudo():
        restart = host.check_output("systemctl show supervisor --property=Restart")
    assert restart == "Restart=always"


def test_every_supervisor_program_is_running(host) -> None:
    with host.sudo():
        status = host.run("supervisorctl status")
    lines = [line.split() for line in status.stdout.splitlines() if line.strip()]
    assert lines, "supervisor manages no program"
    assert {fields[0]: fields[1] for fields in lines} == {fields[0]: "RUNNING" for fields in lines}
