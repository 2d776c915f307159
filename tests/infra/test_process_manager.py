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


def _mounts(host, pid: int) -> dict[str, list[str]]:
    """Mount point -> its options, as the process sees them (the last mount on a point wins)."""
    mounts: dict[str, list[str]] = {}
    for line in host.file(f"/proc/{pid}/mountinfo").content_string.splitlines():
        fields = line.split()
        mounts[fields[4]] = fields[5].split(",")
    return mounts


def _options_at(mounts: dict[str, list[str]], path: str) -> list[str]:
    """The options of the mount a path lies on (the longest mount point above it)."""
    point = max((m for m in mounts if path == m or path.startswith(m.rstrip("/") + "/")), key=len)
    return mounts[point]


def test_every_app_process_runs_without_new_privileges_and_systemd_ones_sandboxed(
    host, kit_vars
) -> None:
    """No app process can gain privileges (setuid binaries do nothing for it: no_new_privs, from
    setpriv under supervisor, NoNewPrivileges under systemd). Under systemd each also has no
    capabilities at all and sees the system read-only except its own write paths, with a private
    /tmp."""
    hv = kit_vars[host.backend.get_hostname()]
    processes = AppProcesses(host, hv)
    programs = {p["name"]: p for p in hv["app_processes_programs"]}
    with host.sudo():
        for instance in processes.present:
            name = instance["control"]
            pid = processes.pid(name)
            assert pid, name
            status = dict(
                line.split(":\t", 1)
                for line in host.file(f"/proc/{pid}/status").content_string.splitlines()
            )
            assert status["NoNewPrivs"].strip() == "1", name
            assert int(status["CapEff"], 16) == 0, name
            if not processes.systemd:
                continue
            assert int(status["CapBnd"], 16) == 0, name
            mounts = _mounts(host, pid)
            assert "ro" in mounts["/"], (name, mounts["/"])
            assert "rw" in mounts["/tmp"], name
            for path in programs[instance["program"]].get("write_paths", []):
                assert "rw" in _options_at(mounts, path), (name, path)
            # The app's code, its releases and its env file: read-only to the app's own processes.
            assert "ro" in _options_at(mounts, hv["celery_app_base_dir"]), name
