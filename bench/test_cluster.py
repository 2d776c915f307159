"""The bench's process control (bench/cluster.py): the tests' AppProcesses, its commands bounded
like every other remote command; checked against stand-ins for the host and for AppProcesses."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cluster
import pytest
from cluster import AppProcesses, BoundedHost, Host, RemoteError

GROUPS = [
    {"name": "default", "numprocs": 2},
    {"name": "old", "state": "absent"},
    {"name": "slow", "numprocs": 1},
]


class FakeTestinfra:
    """testinfra's host: records commands, answers with a fixed exit code."""

    def __init__(self, rc: int = 0) -> None:
        self.rc = rc
        self.commands: list[str] = []

    def run(self, command: str) -> Any:
        self.commands.append(command)
        return SimpleNamespace(rc=self.rc, stdout="out", stderr="")

    def file(self, path: str) -> str:
        return f"file {path}"


class FakeProcesses:
    """AppProcesses' interface: workers(group=None), state, stop/start(*names), stop_settings."""

    def __init__(self, bounded: BoundedHost, stuck: str = "") -> None:
        self.bounded = bounded
        self.stuck = stuck  # a process that stays as it is
        self.running: dict[str, int] = {}
        self.calls: list[tuple[str, tuple[str, ...], float]] = []

    def workers(self, group: dict[str, Any] | None = None) -> list[str]:
        """Like AppProcesses: every process of the group, or of every group still deployed."""
        groups = [group] if group else [g for g in GROUPS if g.get("state", "present") == "present"]
        return [f"w-{g['name']}-{i}" for g in groups for i in range(int(g.get("numprocs", 1)))]

    def stop(self, *names: str) -> None:
        self.calls.append(("stop", names, self.bounded.timeout))
        for name in names:
            if name != self.stuck:
                self.running.pop(name, None)

    def start(self, *names: str) -> None:
        self.calls.append(("start", names, self.bounded.timeout))
        for index, name in enumerate(names):
            if name != self.stuck:
                self.running[name] = 100 + index

    def state(self, name: str) -> tuple[str, int]:
        return ("RUNNING", self.running[name]) if name in self.running else ("STOPPED", 0)

    def stop_settings(self, name: str) -> Any:
        return SimpleNamespace(wait_seconds=40 if "slow" in name else 10)


@pytest.fixture
def testinfra_host(monkeypatch: pytest.MonkeyPatch) -> FakeTestinfra:
    fake = FakeTestinfra()
    monkeypatch.setattr(cluster.testinfra, "get_host", lambda *args, **kwargs: fake)
    return fake


def make_host(stuck: str = "") -> tuple[Host, FakeProcesses]:
    host = Host("worker1", {"celery_worker_groups": GROUPS}, Path("inventory"))
    fake = FakeProcesses(host._bounded, stuck)
    host.processes = fake  # type: ignore[assignment]  # cached_property: an instance attribute
    return host, fake


def test_the_tests_process_control_is_what_the_bench_uses() -> None:
    for method in ("workers", "state", "pid", "stop", "start", "stop_settings", "all"):
        assert callable(getattr(AppProcesses, method))


def test_kit_workers_are_every_process_of_the_deployed_groups(testinfra_host: Any) -> None:
    host, _ = make_host()
    assert host.kit_workers() == ["w-default-0", "w-default-1", "w-slow-0"]


def test_one_command_stops_and_one_starts_them_all_bounded_by_the_stop_waits(
    testinfra_host: Any,
) -> None:
    host, fake = make_host()
    names = ("w-default-0", "w-default-1", "w-slow-0")
    assert host.control_workers("start") == dict(zip(names, (100, 101, 102), strict=True))
    assert host.control_workers("stop") == dict.fromkeys(names, 0)
    # supervisorctl stops named processes one after another: the waits add up, plus slack
    assert fake.calls == [("start", names, 10 + 10 + 40 + 60), ("stop", names, 120)]
    assert host._bounded.timeout == 30  # state queries are bounded as before


@pytest.mark.parametrize("action", ["stop", "start"])
def test_a_process_not_in_the_wanted_state_afterwards_fails(
    testinfra_host: Any, action: str
) -> None:
    host, fake = make_host(stuck="w-default-1")
    if action == "stop":
        fake.running["w-default-1"] = 7
    with pytest.raises(RemoteError, match="worker1: after `" + action + "`: .*w-default-1"):
        host.control_workers(action)


def test_commands_run_under_coreutils_timeout_as_root(testinfra_host: FakeTestinfra) -> None:
    bounded = BoundedHost(Host("worker1", {}, Path("inventory")), timeout=45)
    assert bounded.run("supervisorctl status %s", "a b").stdout == "out"
    assert testinfra_host.commands == [
        "timeout -k 10 45 sh -c 'supervisorctl status '\"'\"'a b'\"'\"''"
    ]
    assert bounded.file("/etc/x") == "file /etc/x"  # testinfra's own modules
    testinfra_host.rc = 3
    with pytest.raises(RemoteError, match="worker1: `systemctl stop u` exited 3"):
        bounded.run_expect([0], "systemctl stop u")
