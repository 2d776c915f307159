"""The containers' CPU counters, read from a cgroup tree laid out as LXC lays it out."""

from __future__ import annotations

from pathlib import Path

from machine_cpu import read_usage, usage_between


def test_each_containers_cpu_seconds_come_from_its_cgroup(tmp_path: Path) -> None:
    v1 = tmp_path / "cpuacct" / "lxc.payload.kit-worker1"
    v1.mkdir(parents=True)
    (v1 / "cpuacct.usage").write_text("2500000000\n")
    (tmp_path / "cpuacct" / "lxc.monitor.kit-worker1").mkdir()  # LXC's monitor: not a host
    v2 = tmp_path / "lxc.payload.kit-broker1"
    v2.mkdir()
    (v2 / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n")
    (tmp_path / "lxc.payload.other-web1").mkdir()  # another project's container
    assert read_usage(tmp_path, "kit-") == {"worker1": 2.5, "broker1": 1.5}


def test_usage_between_counts_only_containers_in_both_readings() -> None:
    before = {"broker1": 10.0, "worker1": 4.0}
    after = {"broker1": 13.5, "worker1": 4.25, "web1": 1.0}
    assert usage_between(before, after) == {"broker1": 3.5, "worker1": 0.25}
