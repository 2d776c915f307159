"""The host of the sending beat dies: a standby beat takes over, sending no period twice.

With celery_beat_scheduler 'redbeat' every celery_beat host runs beat; the schedule and a lock are
in Redis, and only the lock's holder sends. The scenario cuts the power of the sender's host and
reads, from every beat log, when each heartbeat (kitapp_beat_heartbeat_seconds) was sent.
"""

from __future__ import annotations

import math
import time

import pytest
from app_processes import AppProcesses
from cluster_ops import lxc, lxc_container
from cluster_runs import beat_heartbeat_sends, hosts_in, wait_until
from ledger_batch import Outcome

BOOT_TIMEOUT = 180


def periods_missed(gaps: list[float], period: float) -> int:
    """Periods with no send: a gap of n whole periods (a tenth of one over, for jitter) misses
    n - 1; a shorter one sent a period late, not missed."""
    return sum(max(0, math.floor(gap / period + 0.1) - 1) for gap in gaps)


def sent_twice(gaps: list[float], period: float) -> int:
    """Sends that came before the period was up: one beat sends a period apart to within a few
    milliseconds (measured), and a successor sends an overdue task once, so a send more than half
    a second early sent that period's task a second time (a daily task twice in a day). The stale
    schedule file of a moved beat sent one 1.1 s early: this counts it."""
    return sum(1 for gap in gaps if gap < period - 0.5)


@pytest.fixture(scope="module")
def beat_hosts(kit_vars: dict) -> list[str]:
    names = hosts_in(kit_vars, "celery_beat")
    hv = kit_vars[names[0]]
    if hv["celery_beat_scheduler"] != "redbeat" or len(names) < 2:
        pytest.fail(
            f"beat failover needs celery_beat_scheduler redbeat and 2+ beat hosts: "
            f"{hv['celery_beat_scheduler']} on {names}"
        )
    return names


def test_beat_host_hard_stopped_its_standby_takes_over_sending_no_period_twice(
    hosts, kit_vars, beat_hosts, report
) -> None:
    hv = kit_vars[beat_hosts[0]]
    period = float(hv["kitapp_beat_heartbeat_seconds"])
    max_interval = float(hv["celery_beat_max_interval"])
    lock_timeout = 5 * max_interval  # RedBeat's lock without an explicit redbeat_lock_timeout

    started = time.time()
    # The sender: the beat host with the latest send, once a send is seen.
    last = {}
    wait_until(
        lambda: (
            last.update({n: max(beat_heartbeat_sends(hosts[n], hv), default=0) for n in beat_hosts})
            or max(last.values()) > started
        ),
        2 * period,
        "a heartbeat sent",
        interval=1,
    )
    active = max(last, key=last.get)
    standbys = [name for name in beat_hosts if name != active]

    fault_at = time.time()
    lxc("stop", "--kill", "-n", lxc_container(active))  # no shutdown: the power is cut
    try:
        taken_over = {}
        wait_until(
            lambda: (
                taken_over.update(
                    {
                        n: [t for t in beat_heartbeat_sends(hosts[n], hv) if t > fault_at]
                        for n in standbys
                    }
                )
                or any(taken_over.values())
            ),
            lock_timeout + max_interval + 2 * period,
            "a standby beat to send",
            interval=1,
        )
        (successor,) = [name for name, times in taken_over.items() if times]
        recovery = min(taken_over[successor]) - fault_at
        time.sleep(period + 1)  # the successor's next send comes one period after its first
    finally:
        lxc("start", "-n", lxc_container(active))
    returned = AppProcesses(hosts[active], kit_vars[active])
    wait_until(
        lambda: returned.state(returned.service("beat"))[0] == "RUNNING",
        BOOT_TIMEOUT,
        f"beat on {active} to run again after boot",
        interval=3,
    )
    back_at = time.time()
    time.sleep(period + 1)  # a returned beat that sent too would send within a period

    by_host = {
        name: [t for t in beat_heartbeat_sends(hosts[name], hv) if t >= started]
        for name in beat_hosts
    }
    timeline = sorted(t for times in by_host.values() for t in times)
    gaps = [b - a for a, b in zip(timeline, timeline[1:], strict=False)]
    missed, doubled = periods_missed(gaps, period), sent_twice(gaps, period)
    after_return = [name for name, times in by_host.items() if any(t > back_at for t in times)]
    report(
        Outcome(
            scenario=f"beat host {active} hard-stopped; {successor} took over (periods)",
            submitted=len(timeline) + missed,
            completed=len(timeline),
            lost=missed,
            duplicated=doubled,
            redelivered=0,
            recovery_seconds=round(recovery, 1),
            drain_seconds=round(timeline[-1] - fault_at, 1),
            note=(
                f"heartbeat every {period:.0f} s; lock {lock_timeout:.0f} s; longest gap"
                f" {max(gaps):.1f} s; after {active} came back, sent by {after_return}"
            ),
        )
    )
    assert doubled == 0, f"sent twice: gaps {gaps}"
    # The lock outlives its dead holder by up to lock_timeout, and the standby tries for it every
    # max_interval; it then sends the overdue heartbeat at once.
    assert recovery <= lock_timeout + max_interval + period, f"took over after {recovery:.0f} s"
    assert max(gaps) <= period + lock_timeout + max_interval + 2, gaps
    assert missed <= periods_missed([lock_timeout + max_interval], period), gaps
    assert after_return == [successor], f"after {active} came back, sent by {after_return}"
