"""Pure logic of the benchmark report: statistics, wrk/Ansible parsing, ratios, the table."""

from __future__ import annotations

import pytest
from remote.stats import count_between, percentile, rate, ratio, steady_rate
from report import (
    cold_provision_seconds,
    compute_ratios,
    cpu_busy_fraction,
    duration_ms,
    format_table,
    parse_phases,
    parse_recap,
    parse_wrk,
    play_header,
    play_seconds,
    table_rows,
)

WRK_OUTPUT = """\
Running 10s test @ http://10.0.3.31/api/jobs
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    25.10ms   10.02ms 120.50ms   80.00%
    Req/Sec   160.21     20.11   200.00     70.00%
  Latency Distribution
     50%   23.50ms
     75%   28.00ms
     90%   35.00ms
     99%    1.02s
  3204 requests in 10.01s, 1.10MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 5
Requests/sec:    320.08
Transfer/sec:    112.50KB
"""


def test_percentile_interpolates_between_ranks() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 3.0
    assert percentile(values, 100) == 5.0
    assert percentile(values, 25) == 2.0
    assert percentile([1.0, 2.0], 50) == 1.5
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_steady_rate_ignores_ramp_up_and_stragglers() -> None:
    # 100 events 10 ms apart, a slow start (first event 5 s early) and a straggler 5 s late.
    times = [0.0] + [5.0 + i * 0.01 for i in range(98)] + [20.0]
    assert steady_rate(times) == pytest.approx(100.0, rel=0.02)
    assert rate(len(times), 20.0) == pytest.approx(5.0)
    assert steady_rate([1.0, 2.0]) is None


def test_ratio_is_none_without_both_figures() -> None:
    assert ratio(10, 4) == 2.5
    assert ratio(None, 4) is None
    assert ratio(1, 0) is None


def test_wrk_output_is_parsed_into_ms() -> None:
    out = parse_wrk(WRK_OUTPUT)
    assert out["requests_per_s"] == 320.08
    assert out["latency_ms"] == {"p50": 23.5, "p75": 28.0, "p90": 35.0, "p99": 1020.0}
    assert out["requests"] == 3204
    assert out["duration_s"] == pytest.approx(10.01)
    assert out["non_2xx_3xx"] == 5
    assert out["socket_errors"] == 3


def test_wrk_durations_and_bad_output() -> None:
    assert duration_ms("812.00us") == pytest.approx(0.812)
    assert duration_ms("1.00m") == 60_000
    with pytest.raises(ValueError):
        duration_ms("fast")
    with pytest.raises(ValueError):
        parse_wrk("unable to connect to 10.0.3.31:80 Connection refused")


def test_recap_and_phases_files() -> None:
    recap = parse_recap(
        "PLAY RECAP ****\n"
        "broker1  : ok=40   changed=0    unreachable=0    failed=0    skipped=3\n"
        "web1     : ok=52   changed=2    unreachable=0    failed=0    skipped=1\n"
    )
    assert recap["web1"]["changed"] == 2
    assert recap["broker1"]["ok"] == 40
    phases = parse_phases(
        "vagrant up (broker1 web1)                       27s\n"
        "provision: first run of site.yml                412s\n"
        "provision: second run of site.yml (expect changed=0)    95s\n"
    )
    assert phases["vagrant up (broker1 web1)"] == 27
    assert cold_provision_seconds(phases) == 412
    assert cold_provision_seconds({}) is None


def sample_phases() -> dict:
    return {
        "broker_ceiling": {
            "queue_type": "quorum",
            "publish": {"rate": 1000.0},
            "consume": {"steady_rate": 2000.0, "consumers": 4},
        },
        "celery": {
            "kit": {
                "publish": {"rate": 500.0, "sent": 10},
                "drain": {"steady_rate": 400.0, "done": 10, "span_seconds": 25.0},
            },
            "hand": {
                "publish": {"rate": 500.0, "sent": 10},
                "drain": {"steady_rate": 200.0, "done": 10, "span_seconds": 50.0},
            },
        },
        "http": {"error": "RemoteError: wrk missing"},
        "e2e_latency": {
            "latency_ms": {"p50": 40.0, "p95": 60.0, "p99": 90.0},
            "succeeded": 100,
            "sent": 100,
        },
        "provision": {"skipped": "set BENCH_PROVISION=1", "cold_seconds": 400},
    }


def test_ratios_come_from_figures_of_the_same_run() -> None:
    ratios = {r["name"]: r["value"] for r in compute_ratios(sample_phases())}
    assert ratios["celery drain: kit workers / hand-started worker"] == 2.0
    assert ratios["celery drain: kit workers / broker ceiling (consume)"] == 0.2
    assert ratios["celery publish: send_task / broker ceiling (publish)"] == 0.5
    assert ratios["http req/s: POST /api/jobs (enqueue) / GET /ping (trivial)"] is None
    assert ratios["provision: warm (kit default) / cold first run"] is None


def test_table_shows_figures_errors_and_skips() -> None:
    phases = sample_phases()
    text = format_table(table_rows(phases), compute_ratios(phases))
    assert "ERROR: RemoteError: wrk missing" in text
    assert "skipped: set BENCH_PROVISION=1" in text
    assert "400.0" in text and "2.000" in text
    assert "40.0 ms / 60.0 ms / 90.0 ms" in text
    assert "sweep" not in text.split("ratios")[0]  # phases not run have no rows


def sweep_part(rates: list[float], pattern: str | None) -> dict:
    grid = [(c, p) for c in (1, 2, 4) for p in (1, 4)]
    points = [
        {"concurrency": c, "prefetch": p, "rate": rate}
        for (c, p), rate in zip(grid, rates, strict=False)
    ]
    fastest = max(points, key=lambda point: point["rate"])
    return {
        "tasks_per_point": 48,
        "sleep_pattern": pattern,
        "worker_hosts": ["worker1", "worker2"],
        "points": points,
        "fastest": fastest,
        "partial": len(points) < len(grid),
    }


def test_sweep_scale_and_profile_rows_and_ratios() -> None:
    phases = sample_phases()
    phases["sweep"] = {
        "short": sweep_part([100.0, 150.0, 180.0, 260.0, 300.0, 420.0], None),
        "long": sweep_part([3.0, 2.5, 6.0], "1.0,0.1"),
    }
    phases["scale"] = {
        "hosts_default": 7,
        "hosts_doubled": 14,
        "warm_default": {"seconds": 100.0},
        "scale_out_first_run": {"seconds": 400.0},
        "warm_doubled": {"seconds": 150.0, "serial_seconds": 90.0, "cpu_busy": 0.93},
    }
    phases["profile"] = {
        "host": "web1",
        "samples": 200,
        "by_package": [{"name": "kombu", "samples": 80, "share": 0.4}],
        "self": [{"name": "send (stdlib:socket)", "samples": 50, "share": 0.25}],
        "inclusive": [],
    }
    summary = {"by_package": [{"name": "redis", "samples": 40, "share": 0.4}], "self": []}
    phases["worker_profile"] = {
        "host": "worker1",
        "seconds": 15,
        "tasks_in_window": 3000,
        "tasks_per_s": 200.0,
        "queue_ran_dry": False,
        "main": {
            "cores_busy": 0.61,
            "cpu_ms_per_task": 3.05,
            "pyspy_active_threads": 0.9,
            **summary,
        },
        "pool": {
            "cores_busy": 0.93,
            "cpu_ms_per_task": 4.5,
            "pyspy_active_threads": 1.2,
            **summary,
        },
        "machine": {
            "seconds": 16.0,
            "cpu_busy": 0.97,
            "containers": {"broker1": {"cores_busy": 0.4, "cpu_ms_per_task": 2.13}},
        },
    }
    ratios = {r["name"]: r["value"] for r in compute_ratios(phases)}
    assert ratios["provision warm: twice the hosts / default cluster"] == 1.5
    assert ratios["sweep, short tasks: fastest hand worker / kit workers"] == 420.0 / 400.0
    text = format_table(table_rows(phases), compute_ratios(phases))
    assert "concurrency 4, prefetch 4" in text  # the short sweep's fastest point
    assert "fastest (partial sweep)" in text  # the long sweep reached 3 of 6 points
    assert "sleeps 1.0,0.1 s" in text
    assert "innermost frame in kombu" in text and "40%" in text
    assert "150.0 s" in text
    assert "batched plays" in text and "90.0 s" in text and "93%" in text
    assert "3000 (200.0/s)" in text and "queue ran dry" not in text
    assert "main process: CPU per task" in text and "3.05 ms" in text and "4.50 ms" in text
    assert "pool children: cores busy (kernel)" in text and "0.93" in text
    assert "container broker1: cores busy, CPU per task" in text and "0.40, 2.13 ms" in text
    assert "all containers)" in text and "97%" in text


def test_batched_plays_add_up_and_the_last_play_ends_with_the_run() -> None:
    events = [(0.0, "Prepare"), (10.0, "Brokers"), (25.0, "Brokers"), (40.0, "Web")]
    assert play_seconds(events, end=52.5) == {"Prepare": 10.0, "Brokers": 30.0, "Web": 12.5}
    assert play_seconds([], end=3.0) == {}


def test_play_headers_are_recognised_only_on_play_lines() -> None:
    assert play_header("PLAY [Deploy the web front end, one host at a time] *****\n") == (
        "Deploy the web front end, one host at a time"
    )
    assert play_header("TASK [rabbitmq : Join] *****") is None
    assert play_header("PLAY RECAP *****") is None


def test_cpu_busy_counts_idle_and_iowait_as_not_busy() -> None:
    before = "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 1 1 1 1 1 1 1 1 1\n"
    after = "cpu  400 0 200 900 100 0 0 0 0 0\n"
    # 600 ticks elapsed, 200 of them idle
    assert cpu_busy_fraction(before, after) == 1 - 200 / 600
    assert cpu_busy_fraction(after, after) is None


def test_count_between_includes_both_ends() -> None:
    assert count_between([1.0, 2.0, 3.0, 4.0], 2.0, 3.0) == 2
    assert count_between([1.0], 2.0, float("inf")) == 0
