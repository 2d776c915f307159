"""Reading beat's heartbeat sends from its log (cluster_runs.beat_heartbeat_sends), without a
cluster: the log's local times with the host's zone, other lines ignored."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import pytest
from cluster_runs import beat_heartbeat_sends

HV = {"celery_app_log_dir": "/var/log/kitapp", "celery_app_name": "kitapp"}
LOG = """\
[2026-12-06 19:14:06,261: INFO/MainProcess] beat: Starting...
[2026-12-06 19:14:06,364: INFO/MainProcess] beat: Acquired lock
[2026-12-06 19:14:21,360: INFO/MainProcess] Scheduler: Sending due task heartbeat (kitapp.noop)
[2026-12-06 19:14:22,000: INFO/MainProcess] Scheduler: Sending due task cleanup (kitapp.cleanup)
[2026-12-06 19:14:36,363: INFO/MainProcess] Scheduler: Sending due task heartbeat (kitapp.noop)
"""


class FakeHost:
    def __init__(self, zone: str) -> None:
        self.zone = zone
        self.commands: list[str] = []

    def run(self, command: str) -> SimpleNamespace:
        self.commands.append(command)
        return SimpleNamespace(stdout=f"{LOG}{self.zone}\n")


def test_heartbeat_sends_are_read_with_the_hosts_zone_and_other_tasks_ignored() -> None:
    host = FakeHost("+0100")
    sends = beat_heartbeat_sends(host, HV)
    expected = datetime.fromisoformat("2026-12-06T19:14:21.360+01:00").timestamp()
    assert sends == pytest.approx([expected, expected + 15.003])
    assert "/var/log/kitapp/kitapp-beat.log" in host.commands[0]
