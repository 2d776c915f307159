"""Worker profile (BENCH_PROFILE=1): CPU per task of one worker host's kit workers draining a
queue alone (from the kernel's counters), and where their time goes (py-spy)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import machine_cpu
import provision
import pyspy_profile
from cluster import RemoteError
from report import cpu_busy_fraction

from phases.common import PYSPY_RATE, PYSPY_VENV, ensure_pyspy, publish, queue_room

if TYPE_CHECKING:
    from run import Bench


def run(bench: Bench) -> dict[str, Any]:
    """One worker host's kit workers drain a queue filled beforehand, every other kit worker
    paused. The kernel counts their CPU time (main processes, pool children) and every
    container's over the window; py-spy (no --idle) samples where their non-idle time goes; the
    tasks done within the window turn CPU seconds into CPU ms per task."""
    a = bench.args
    host = bench.driver
    ensure_pyspy(bench, host)
    programs = " ".join(host.kit_workers())
    output = f"/tmp/kitbench-worker-profile-{bench.run_id}"
    bench.say("pausing the kit workers (queue fills while nothing consumes)")
    bench.kit_workers("stop")
    try:
        published = publish(bench, None, queue_room(bench, a.profile_tasks), "profile.ids")
        bench.say("starting only this host's kit workers", host.name)
        running = bench.kit_workers("start", [host])[0]
        pids = [pid for pid in running.values() if pid]
        if not pids:
            raise RemoteError(f"{host.name}: no kit worker RUNNING after start: {running}")
        time.sleep(3)  # the pool has forked and the prefetch is full
        record = (
            f"{PYSPY_VENV}/bin/py-spy record --subprocesses --full-filenames --rate {PYSPY_RATE} "
            f"--duration {a.profile_seconds} --format raw"
        )
        both = " ".join(f"{record} --pid {pid} --output {output}.{pid} &" for pid in pids)
        bench.say(f"{record} --pid {' '.join(map(str, pids))}", host.name)
        cpu = pyspy_profile.proc_cpu_ticks(pids)
        usage_before, stat_before = machine_cpu.read_usage(), provision.PROC_STAT.read_text()
        recording_started = time.perf_counter()
        started = host.run(
            f"date +%s.%N; {cpu}; {both} wait; {cpu}; getconf CLK_TCK",
            timeout=a.profile_seconds + 60,
        )
        elapsed = time.perf_counter() - recording_started
        containers = machine_cpu.usage_between(usage_before, machine_cpu.read_usage())
        machine_busy = cpu_busy_fraction(stat_before, provision.PROC_STAT.read_text())
        window_start = float(started.stdout.split()[0])
        kernel = pyspy_profile.proc_cpu_seconds(started.stdout)
        raw = host.run(f"cat {output}.* && rm -f {output}.*", timeout=60).stdout
    finally:
        bench.say("starting the kit workers again")
        bench.kit_workers("start")
    window = f"{window_start},{window_start + a.profile_seconds}"
    drain = bench.script(
        [
            "celery_load.py",
            "drain",
            "--ids-file",
            "profile.ids",
            "--max-seconds",
            str(a.max_seconds),
            "--window",
            window,
        ]
    )
    tasks = int(drain.get("done_in_window") or 0)
    if not drain.get("done_after_window"):
        bench.say("WARNING: the queue ran dry within the window: raise BENCH_PROFILE_TASKS")
    stacks = pyspy_profile.parse_collapsed(raw)
    parts = pyspy_profile.split_by_process(stacks, set(pids))
    rate = tasks / a.profile_seconds

    def per_task(cpu_seconds: float, seconds: float) -> float | None:
        """CPU ms per task at the window's task rate."""
        return 1000 * cpu_seconds / (rate * seconds) if rate > 0 and seconds > 0 else None

    def part(key: str) -> dict[str, Any]:
        return {
            "cores_busy": kernel[key] / a.profile_seconds,
            "cpu_ms_per_task": per_task(kernel[key], a.profile_seconds),
            "pyspy_active_threads": pyspy_profile.active_threads(
                parts[key], PYSPY_RATE, a.profile_seconds
            ),
            **pyspy_profile.summarize(parts[key]),
        }

    return {
        "host": host.name,
        "programs": programs,
        "main_pids": pids,
        "command": record,
        "published": published,
        "seconds": a.profile_seconds,
        "tasks_in_window": tasks,
        "tasks_per_s": rate,
        "queue_ran_dry": not drain.get("done_after_window"),
        "drain": drain,
        # CPU time from the kernel (/proc/PID/stat on the worker host); py-spy's samples give
        # the shares of where the non-idle time goes, waits in socket reads included
        "main": part("main"),
        "pool": part("pool"),
        # every container's CPU over the same recording (read on the LXC host: ssh included)
        "machine": {
            "seconds": elapsed,
            "cpu_busy": machine_busy,
            "containers": {
                name: {"cores_busy": used / elapsed, "cpu_ms_per_task": per_task(used, elapsed)}
                for name, used in containers.items()
            },
        },
    }
