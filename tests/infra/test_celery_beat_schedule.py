"""celery beat's schedule runs: the beat host sends the periodic heartbeat task."""

from __future__ import annotations

import time

testinfra_hosts = ["ansible://celery_beat"]


def test_beat_sends_its_periodic_task(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    log = f"{hv['celery_app_log_dir']}/{hv['celery_app_name']}-beat.log"
    interval = int(hv["kitapp_beat_heartbeat_seconds"])
    assert interval > 0, "kitapp_beat_heartbeat_seconds is 0: beat has nothing to send"
    deadline = time.monotonic() + interval + 15
    with host.sudo():
        while "Sending due task heartbeat" not in host.file(log).content_string:
            assert time.monotonic() < deadline, f"beat sent no heartbeat within {interval + 15}s"
            time.sleep(2)
