"""celery beat's schedule runs: a beat host (the one holding RedBeat's lock) sends the periodic
heartbeat task."""

from __future__ import annotations

import time

SENT = "Sending due task heartbeat"


def test_beat_sends_its_periodic_task(hosts, kit_vars) -> None:
    names = sorted(name for name, hv in kit_vars.items() if "celery_beat" in hv["groups"])
    hv = kit_vars[names[0]]
    log = f"{hv['celery_app_log_dir']}/{hv['celery_app_name']}-beat.log"
    interval = int(hv["kitapp_beat_heartbeat_seconds"])
    assert interval > 0, "kitapp_beat_heartbeat_seconds is 0: beat has nothing to send"

    def sent() -> int:
        return sum(hosts[name].file(log).content_string.count(SENT) for name in names)

    before = sent()
    deadline = time.monotonic() + interval + 15
    while sent() == before:
        assert time.monotonic() < deadline, f"no beat sent a heartbeat within {interval + 15}s"
        time.sleep(2)
