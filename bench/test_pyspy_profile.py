"""py-spy's collapsed stacks summed per package and function (bench/pyspy_profile.py)."""

from __future__ import annotations

from pyspy_profile import (
    active_threads,
    package_of,
    parse_collapsed,
    proc_cpu_seconds,
    proc_cpu_ticks,
    process_of,
    split_by_process,
    summarize,
)

SP = "/opt/kitapp/releases/1/lib/python3.11/site-packages"
RAW = (
    f'process 10:"gunicorn: worker";thread (0x7f);handle ({SP}/gunicorn/workers/gthread.py:10);'
    f"post_job ({SP}/kitapp/web.py:50);send_task ({SP}/celery/app/base.py:700);"
    f"publish ({SP}/kombu/messaging.py:170) 6\n"
    f'process 10:"gunicorn: worker";thread (0x7f);handle ({SP}/gunicorn/workers/gthread.py:10);'
    f"post_job ({SP}/kitapp/web.py:50);dumps (/usr/lib/python3.11/json/__init__.py:231) 3\n"
    f'process 10:"gunicorn: worker";thread (0x7f);handle ({SP}/gunicorn/workers/gthread.py:10) 1\n'
    'process 10:"gunicorn: worker";thread (0x7f) 4\n'
    "garbage line without a count\n"
)


def test_collapsed_lines_parse_into_frames_and_counts() -> None:
    stacks = parse_collapsed(RAW)
    assert [count for _, count in stacks] == [6, 3, 1, 4]
    assert stacks[0][0][-1].startswith("publish (")


def test_files_map_to_their_package() -> None:
    assert package_of(f"{SP}/kombu/messaging.py") == "kombu"
    assert package_of("/usr/lib/python3.11/json/__init__.py") == "stdlib:json"
    assert package_of("/usr/lib/python3.11/socket.py") == "stdlib:socket"


def test_time_is_shared_out_by_innermost_package_and_counted_inclusively() -> None:
    summary = summarize(parse_collapsed(RAW))
    assert summary["samples"] == 10  # the stack of pseudo-frames only is not counted
    by_package = {item["name"]: item["share"] for item in summary["by_package"]}
    assert by_package == {"kombu": 0.6, "stdlib:json": 0.3, "gunicorn": 0.1}
    inclusive = {item["name"]: item["share"] for item in summary["inclusive"]}
    assert inclusive["post_job (kitapp)"] == 0.9
    assert inclusive["handle (gunicorn)"] == 1.0
    assert summary["self"][0] == {"name": "publish (kombu)", "samples": 6, "share": 0.6}


def test_within_keeps_only_the_stacks_through_that_package() -> None:
    summary = summarize(parse_collapsed(RAW), within="kitapp")
    assert summary["samples"] == 9  # the gunicorn-only stack is left out
    by_package = {item["name"]: item["share"] for item in summary["by_package"]}
    assert by_package == {"kombu": 6 / 9, "stdlib:json": 3 / 9}


WORKER_RAW = (
    f'process 20:"celery worker";run ({SP}/celery/worker/worker.py:200);'
    f"drain_events ({SP}/amqp/connection.py:520) 30\n"
    # a pool child's stack starts with its parent's pseudo-frame, then its own
    f'process 20:"celery worker";process 21:"celery worker";'
    f"trace_task ({SP}/celery/app/trace.py:450);set ({SP}/redis/client.py:2000) 50\n"
    f'process 20:"celery worker";process 22:"celery worker";'
    f"trace_task ({SP}/celery/app/trace.py:450) 20\n"
)


def test_stacks_split_into_the_main_process_and_its_pool_children() -> None:
    stacks = parse_collapsed(WORKER_RAW)
    assert [process_of(frames) for frames, _ in stacks] == [20, 21, 22]
    assert process_of(["thread (0x7f)"]) is None
    parts = split_by_process(stacks, {20})
    assert [count for _, count in parts["main"]] == [30]
    assert [count for _, count in parts["pool"]] == [50, 20]


def test_samples_not_idle_become_active_threads_on_average() -> None:
    pool = split_by_process(parse_collapsed(WORKER_RAW), {20})["pool"]
    # 70 samples at 100 Hz over a 2 s window: 0.35 threads not idle on average
    assert active_threads(pool, rate=100, seconds=2.0) == 0.35
    assert active_threads(pool, rate=100, seconds=0) is None


def test_proc_cpu_ticks_become_cpu_seconds_of_main_processes_and_pool() -> None:
    command = proc_cpu_ticks([20, 30])
    assert "/proc/20/stat /proc/30/stat" in command and "pgrep -P 20,30" in command
    assert "$14 + $15" in command  # children reaped during the window still count
    stdout = "1764635000.123\ncpu 500 1200\nSampling...\ncpu 650 1500\n100\n"
    assert proc_cpu_seconds(stdout) == {"main": 1.5, "pool": 3.0}
