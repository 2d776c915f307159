"""The app's processes run under the process manager the inventory chose (celery_process_manager,
as app_processes_manager): every one runs, starts at boot and is restarted when it dies.
With supervisor: the distribution's package, itself restarted by systemd."""

from __future__ import annotations

from app_processes import AppProcesses

testinfra_hosts = ["ansible://celery_workers", "ansible://web"]


def test_every_app_process_runs_starts_at_boot_and_restarts_when_it_dies(host, kit_vars) -> None:
    processes = AppProcesses(host, kit_vars[host.backend.get_hostname()])
    assert processes.all(), "this host should run app processes"
    with host.sudo():
        for name in processes.all():
            assert processes.state(name)[0] == "RUNNING", name
            assert processes.starts_at_boot(name), name
            assert processes.restarts_when_it_dies(name), name


def test_supervisor_is_the_distribution_package_restarted_by_systemd_or_absent(
    host, kit_vars
) -> None:
    """supervisor when chosen (never a pip install against PEP 668); with systemd, none at all."""
    chosen = kit_vars[host.backend.get_hostname()]["app_processes_manager"] == "supervisor"
    assert host.package("supervisor").is_installed == chosen
    assert not host.exists("/usr/local/bin/supervisord")
    if chosen:
        service = host.service("supervisor")
        assert service.is_running and service.is_enabled
        with host.sudo():
            restart = host.check_output("systemctl show supervisor --property=Restart")
        assert restart == "Restart=always"
