"""The app's processes on a host, whatever runs them (the app_processes role renders them as
supervisor programs or systemd units), so one test suite proves both choices.

Names are the manager's own, as the role resolved them (`app_processes_instances`): supervisor
"kitapp-worker-default:kitapp-worker-default-00", systemd "kitapp-worker-default@00.service".
"""

from __future__ import annotations

import configparser
import re
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class StopSettings:
    signal: str  # "TERM"
    wait_seconds: int  # how long the manager waits before SIGKILL
    signal_main_process_only: bool  # the stop signal goes to the main process, not its children
    kill_whole_group: bool  # SIGKILL, if the wait runs out, reaches every process


class AppProcesses:
    """The host's app processes as the app_processes role named them (`app_processes_instances`,
    resolved by Ansible): no naming rule of its own."""

    def __init__(self, host, hv: dict) -> None:
        self.host = host
        self.hv = hv
        self.systemd = hv["app_processes_manager"] == "systemd"
        # Every process of the host's programs; those of removed programs (beat on a host that
        # is not the beat host) have state "absent".
        self.instances: list[dict] = hv["app_processes_instances"]
        self.present = [i for i in self.instances if i["state"] == "present"]

    # Names
    def workers(self, group: dict | None = None) -> list[str]:
        """Every worker process this host should run (of one group, or of all)."""
        return [
            i["control"]
            for i in self.present
            if i["role"] == "celery_worker" and (group is None or i["group"] == group["name"])
        ]

    def service(self, role: str) -> str:
        """beat, gunicorn or flower: the one process of that role's program, running or removed."""
        role = {"beat": "celery_beat"}.get(role, role)
        (name,) = [i["control"] for i in self.instances if i["role"] == role]
        return name

    def all(self) -> list[str]:
        """Every app process this host should run."""
        return [i["control"] for i in self.present]

    # State
    def state(self, name: str) -> tuple[str, int]:
        """("RUNNING", main pid) when it runs, else (its state, 0)."""
        if self.systemd:
            out = self.host.run(f"systemctl show -p ActiveState -p SubState -p MainPID {name}")
            props = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
            running = props.get("ActiveState") == "active" and props.get("SubState") == "running"
            return (
                ("RUNNING", int(props["MainPID"]))
                if running
                else (props.get("ActiveState", "?").upper(), 0)
            )
        fields = self.host.run(f"supervisorctl status {name}").stdout.split()
        state = fields[1] if len(fields) > 1 else "UNKNOWN"
        pid = int(fields[3].rstrip(",")) if state == "RUNNING" and len(fields) > 3 else 0
        return state, pid

    def pid(self, name: str) -> int:
        return self.state(name)[1]

    def pids(self) -> dict[str, int]:
        return {name: self.pid(name) for name in self.all()}

    def starts_at_boot(self, name: str) -> bool:
        if self.systemd:
            return self.host.run(f"systemctl is-enabled {name}").stdout.strip() == "enabled"
        return (
            self.host.service("supervisor").is_enabled
            and self._program(name).get("autostart", "true") == "true"
        )

    # Control
    def stop(self, *names: str) -> None:
        """Stops every named process with one command (each waits for its warm stop)."""
        command = "systemctl stop" if self.systemd else "supervisorctl stop"
        self.host.run_expect([0], f"{command} {' '.join(names)}")

    def start(self, *names: str) -> None:
        command = "systemctl start" if self.systemd else "supervisorctl start"
        self.host.run_expect([0], f"{command} {' '.join(names)}")

    # Configuration
    def restarts_when_it_dies(self, name: str) -> bool:
        if self.systemd:
            return (
                self.host.run(f"systemctl show -p Restart --value {name}").stdout.strip()
                == "always"
            )
        return self._program(name).get("autorestart") == "true"

    def stop_settings(self, name: str) -> StopSettings:
        if self.systemd:
            out = self.host.run(
                f"systemctl show -p KillSignal -p KillMode -p TimeoutStopUSec {name}"
            )
            props = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
            return StopSettings(
                signal={"15": "TERM"}.get(props["KillSignal"], props["KillSignal"]),
                wait_seconds=_seconds(props["TimeoutStopUSec"]),
                signal_main_process_only=props["KillMode"] in ("mixed", "process"),
                kill_whole_group=props["KillMode"] in ("mixed", "control-group"),
            )
        program = self._program(name)
        stop_as_group = program.get("stopasgroup", "false") == "true"
        return StopSettings(
            signal=program.get("stopsignal", "TERM"),
            wait_seconds=int(program.get("stopwaitsecs", "10")),
            signal_main_process_only=not stop_as_group,
            kill_whole_group=stop_as_group or program.get("killasgroup", "false") == "true",
        )

    def _program(self, name: str) -> configparser.SectionProxy:
        program = name.split(":", 1)[0]
        parser = configparser.RawConfigParser()
        folder = self.hv["app_processes_supervisor_dir"]
        parser.read_string(self.host.file(f"{folder}/{program}.conf").content_string)
        return parser[f"program:{program}"]


def stop_on_every_host(targets: dict[str, tuple[AppProcesses, list[str]]]) -> dict[str, float]:
    """Stops the named processes of every host at once (host -> (its processes, names), the
    names one after another on a host); returns host -> seconds its stops took."""
    seconds: dict[str, float] = {}

    def stop(host: str) -> None:
        processes, names = targets[host]
        began = time.monotonic()
        for name in names:
            processes.stop(name)
        seconds[host] = time.monotonic() - began

    threads = [threading.Thread(target=stop, args=(host,)) for host in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return seconds


def _seconds(timespan: str) -> int:
    """systemd's "6min 30s" / "1h" / "390000000" (µs) to whole seconds."""
    if timespan.isdigit():
        return int(timespan) // 1_000_000
    units = {"h": 3600, "min": 60, "s": 1, "ms": 0.001}
    return int(sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)(h|min|ms|s)", timespan)))
