"""`make bench`: throughput and latency of the running cluster, as ratios measured in one run.

Phases (each bounded in count and time; all load goes to the cluster's own hosts):
  ceiling    raw AMQP publish/consume (kombu) from a worker host, with the kit's guarantees
  celery     N kitapp.noop tasks through the kit's supervisor workers, and the same N through a
             worker started by hand the tutorial's way (`celery -A kitapp.celery_app worker`)
  http       wrk on a worker host against POST /api/jobs and GET /ping (nginx -> gunicorn)
  e2e        POST /api/jobs -> GET reports SUCCESS, at a light steady rate, from this machine
  provision  (BENCH_PROVISION=1) warm site.yml with and without pipelining/ControlPersist
  sweep      (BENCH_SWEEP=1) hand-started workers, concurrency {1,2,4} x prefetch {1,4}: short
             tasks (no-ops, one worker host) and long ones (sleeps of mixed length, every
             worker host)
  scale      (BENCH_SCALE=1) warm site.yml on the default cluster, then on twice the hosts
             (vagrant/hosts.yml's scale_out machines, started here and left running)
  profile    (BENCH_PROFILE=1) py-spy on a web host's gunicorn while wrk posts jobs
  worker-profile  (BENCH_PROFILE=1) py-spy on one worker host's kit workers draining a queue
             filled beforehand (every other kit worker paused): CPU per task, and where it goes

Prints progress to stderr and the table to stdout; writes bench/results/<run id>.json and
bench/results/<run id>.png. Exit status: 0 all phases ran, 1 a phase failed, 2 the cluster is
not up.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import chart
import e2e_latency
import machine_cpu
import provision
import pyspy_profile
import requests
import yaml
from cluster import (
    DEFAULT_INVENTORY,
    ROOT,
    ClusterNotUp,
    Host,
    RemoteError,
    kit_worker_processes,
    parallel,
    remote_files,
    resolve_vars,
    worker_programs,
)
from progress import Progress
from report import compute_ratios, cpu_busy_fraction, format_table, parse_wrk, table_rows

RESULTS_DIR = Path(__file__).resolve().parent / "results"
HAND_QUEUE = "bench-hand"
DEFAULT_PHASES = ["ceiling", "celery", "http", "e2e"]


def env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--inventory", type=Path, default=Path(env("BENCH_INVENTORY", str(DEFAULT_INVENTORY)))
    )
    p.add_argument(
        "--phases",
        default=env("BENCH_PHASES", ",".join(DEFAULT_PHASES)),
        help="comma-separated subset of: " + ",".join(PHASES),
    )
    p.add_argument(
        "--tasks",
        type=int,
        default=int(env("BENCH_TASKS", "10000")),
        help="no-op tasks per Celery run (kit and hand-started each)",
    )
    p.add_argument("--amqp-messages", type=int, default=int(env("BENCH_AMQP_MESSAGES", "20000")))
    p.add_argument(
        "--amqp-consumers",
        type=int,
        default=int(env("BENCH_AMQP_CONSUMERS", "0")),
        help="0: one per kit worker process (sum of concurrency x numprocs)",
    )
    p.add_argument(
        "--hand-concurrency",
        type=int,
        default=int(env("BENCH_HAND_CONCURRENCY", "0")),
        help="0: celery's default (the host's CPU count)",
    )
    p.add_argument(
        "--hand-prefetch",
        type=int,
        default=int(env("BENCH_HAND_PREFETCH", "4")),
        help="prefetch multiplier of the hand-started worker (4: celery's default; "
        "0: the env file's value)",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=float(env("BENCH_MAX_SECONDS", "180")),
        help="cap of each publish or drain step",
    )
    p.add_argument("--wrk-duration", type=int, default=int(env("BENCH_WRK_DURATION", "10")))
    p.add_argument("--wrk-connections", type=int, default=int(env("BENCH_WRK_CONNECTIONS", "8")))
    p.add_argument("--wrk-threads", type=int, default=int(env("BENCH_WRK_THREADS", "2")))
    p.add_argument("--e2e-rate", type=float, default=float(env("BENCH_E2E_RATE", "5")))
    p.add_argument("--e2e-seconds", type=float, default=float(env("BENCH_E2E_SECONDS", "20")))
    p.add_argument("--provision", action="store_true", default=env_flag("BENCH_PROVISION"))
    p.add_argument("--sweep", action="store_true", default=env_flag("BENCH_SWEEP"))
    p.add_argument("--sweep-tasks", type=int, default=int(env("BENCH_SWEEP_TASKS", "2000")))
    p.add_argument("--sweep-long-tasks", type=int, default=int(env("BENCH_SWEEP_LONG_TASKS", "48")))
    p.add_argument(
        "--sweep-long-pattern",
        default=env("BENCH_SWEEP_LONG_PATTERN", "1.0,0.1,0.1,0.1"),
        help="seconds each long task sleeps, cycled",
    )
    p.add_argument(
        "--sweep-max-seconds",
        type=float,
        default=float(env("BENCH_SWEEP_MAX_SECONDS", "900")),
        help="time budget of the whole sweep (points not reached: partial)",
    )
    p.add_argument("--scale", action="store_true", default=env_flag("BENCH_SCALE"))
    p.add_argument("--profile", action="store_true", default=env_flag("BENCH_PROFILE"))
    p.add_argument("--profile-seconds", type=int, default=int(env("BENCH_PROFILE_SECONDS", "15")))
    p.add_argument(
        "--profile-tasks",
        type=int,
        default=int(env("BENCH_PROFILE_TASKS", "8000")),
        help="no-op tasks queued for the worker profile (enough to outlast the window)",
    )
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = p.parse_args(argv)
    phases = [name.strip() for name in args.phases.split(",") if name.strip()]
    opt_in = {
        "provision": args.provision,
        "sweep": args.sweep,
        "profile": args.profile,
        "worker-profile": args.profile,
        "scale": args.scale,
    }
    phases += [name for name, on in opt_in.items() if on and name not in phases]
    unknown = set(phases) - set(PHASES)
    if unknown:
        p.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    args.phase_list = phases
    return args


@dataclass
class Bench:
    args: argparse.Namespace
    progress: Progress
    kit_vars: dict[str, dict[str, Any]]
    run_id: str
    workers: list[Host] = field(default_factory=list)
    web_name: str = ""

    @property
    def driver(self) -> Host:
        """The worker host the loads run from."""
        return self.workers[0]

    @property
    def workdir(self) -> str:
        return f"/tmp/kitbench-{self.run_id}"

    @property
    def web_url(self) -> str:
        hv = self.kit_vars[self.web_name]
        return f"http://{hv['cluster_address']}:{hv['nginx_listen_port']}"

    @property
    def step_timeout(self) -> float:
        """SSH-side bound of one remote step: the script's own cap plus slack."""
        return self.args.max_seconds * 2 + 120

    def say(self, message: str, host: str | None = None) -> None:
        self.progress.say(message, host)

    def script(self, argv: list[str]) -> dict[str, Any]:
        self.say(" ".join(argv[:2]) + " ...", self.driver.name)
        started = time.monotonic()
        out = self.driver.app_script(self.workdir, argv, timeout=self.step_timeout)
        self.say(f"{argv[0]} done in {time.monotonic() - started:.1f}s", self.driver.name)
        if "error" in out:
            raise RemoteError(f"{self.driver.name}: {argv[0]} {argv[1]}: {out['error']}")
        if out.get("timed_out"):
            self.say(f"WARNING: {argv[1]} incomplete: {out.get('missing')} tasks not done")
        return out

    def supervisor(self, action: str, hosts: list[Host] | None = None) -> list[str]:
        """stop/start every kit worker program on every worker host, or on the given ones (all at
        once); checks they all reached the state and returns each host's `supervisorctl status`."""

        def one(host: Host) -> str:
            programs = program_globs(host)
            self.say(f"supervisorctl {action} {programs}", host.name)
            # "already started/stopped" is not an error; the status check below decides.
            host.run(
                f"supervisorctl {action} {programs}", timeout=host_stop_timeout(host), check=False
            )
            status = host.run(f"supervisorctl status {programs}", timeout=30, check=False)
            want = "RUNNING" if action == "start" else "STOPPED"
            lines = [ln for ln in status.stdout.splitlines() if ln.strip()]
            if not lines or not all(want in ln for ln in lines):
                raise RemoteError(f"{host.name}: after `{action}`: {status.stdout.strip()}")
            return status.stdout

        return parallel(one, self.workers if hosts is None else hosts)

    def kill_hand_worker(self, host: Host | None = None) -> None:
        pid_file = shlex.quote(f"{self.workdir}/hand-worker.pid")
        (host or self.driver).run(
            f"if [ -f {pid_file} ]; then kill -KILL -- -$(cat {pid_file}) 2>/dev/null; "
            f"rm -f {pid_file}; fi; true",
            timeout=30,
            check=False,
        )


def host_stop_timeout(host: Host) -> float:
    """supervisor waits up to the task time limit + grace for a warm shutdown."""
    return (
        int(host.vars["celery_worker_task_time_limit"])
        + int(host.vars["celery_worker_stop_grace"])
        + 60
    )


def preflight(args: argparse.Namespace, progress: Progress, run_id: str) -> Bench:
    progress.begin("preflight")
    progress.say(f"resolving variables of {args.inventory}")
    kit_vars = resolve_vars(args.inventory)
    workers = sorted(n for n, hv in kit_vars.items() if "celery_workers" in hv["groups"])
    webs = sorted(n for n, hv in kit_vars.items() if "web" in hv["groups"])
    if not workers or not webs:
        raise ClusterNotUp("the inventory has no host in 'celery_workers' or 'web'")
    bench = Bench(args, progress, kit_vars, run_id, web_name=webs[0])
    bench.workers = [Host(name, kit_vars[name], args.inventory) for name in workers]

    def check(host: Host) -> str | None:
        progress.say("ssh + sudo", host.name)
        reason = host.reachable()
        if reason:
            return f"{host.name}: not reachable over SSH ({reason})"
        base = host.vars["celery_app_base_dir"]
        probe = host.run(
            f"test -x {base}/bin/with-env && test -x {base}/current/bin/python "
            f"&& supervisorctl status",
            timeout=30,
            check=False,
        )
        for program in worker_programs(host.vars):
            lines = [ln for ln in probe.stdout.splitlines() if ln.startswith(f"{program}:")]
            if not lines or not all("RUNNING" in ln for ln in lines):
                return f"{host.name}: kit worker {program} is not RUNNING (is the app deployed?)"
        return None

    problems = [p for p in parallel(check, bench.workers) if p]
    progress.say(f"GET {bench.web_url}/ping", bench.web_name)
    try:
        reply = requests.get(f"{bench.web_url}/ping", timeout=5)
        if reply.status_code != 200:
            problems.append(f"{bench.web_name}: GET /ping answered {reply.status_code}")
    except requests.RequestException as exc:
        problems.append(f"{bench.web_name}: GET /ping failed ({type(exc).__name__})")
    if problems:
        raise ClusterNotUp("\n  ".join(problems))
    progress.say(f"copying bench/remote to {bench.workdir}", bench.driver.name)
    bench.driver.make_workdir(bench.workdir, remote_files())
    return bench


def phase_ceiling(bench: Bench) -> dict[str, Any]:
    consumers = bench.args.amqp_consumers or kit_worker_processes(bench.kit_vars) or 1
    return bench.script(
        [
            "amqp_ceiling.py",
            "--queue",
            f"bench-amqp-{bench.run_id}",
            "--count",
            str(bench.args.amqp_messages),
            "--consumers",
            str(consumers),
            "--max-seconds",
            str(bench.args.max_seconds),
        ]
    )


def publish(
    bench: Bench, queue: str | None, count: int, ids_file: str, extra: list[str] | None = None
) -> dict[str, Any]:
    argv = [
        "celery_load.py",
        "publish",
        "--count",
        str(count),
        "--ids-file",
        ids_file,
        "--max-seconds",
        str(bench.args.max_seconds),
    ]
    return bench.script(argv + (["--queue", queue] if queue else []) + (extra or []))


def hand_drain(bench: Bench, ids_file: str, concurrency: int, prefetch: int) -> dict[str, Any]:
    return bench.script(
        [
            "celery_load.py",
            "drain",
            "--queue",
            HAND_QUEUE,
            "--hand-worker",
            "--ids-file",
            ids_file,
            "--max-seconds",
            str(bench.args.max_seconds),
            "--concurrency",
            str(concurrency),
            "--prefetch",
            str(prefetch),
            "--log-file",
            "hand-worker.log",
            "--pid-file",
            "hand-worker.pid",
        ]
    )


def delete_hand_queue(bench: Bench) -> None:
    try:
        bench.script(["celery_load.py", "delete-queue", "--queue", HAND_QUEUE])
    except Exception as exc:
        bench.say(f"could not delete {HAND_QUEUE}: {exc}")


def phase_celery(bench: Bench) -> dict[str, Any]:
    n = bench.args.tasks
    out: dict[str, Any] = {"tasks": n, "kit": {}, "hand": {}}
    bench.say("pausing the kit workers (queue fills while nothing consumes)")
    bench.supervisor("stop")
    try:
        out["kit"]["publish"] = publish(bench, None, n, "kit.ids")
        try:
            out["hand"]["publish"] = publish(bench, HAND_QUEUE, n, "hand.ids")
            bench.say(f"hand-started worker drains {HAND_QUEUE} (kit workers paused)")
            out["hand"]["drain"] = hand_drain(
                bench, "hand.ids", bench.args.hand_concurrency, bench.args.hand_prefetch
            )
        except Exception as exc:  # the kit's own figures are still measured below
            out["hand"]["error"] = f"{type(exc).__name__}: {exc}"
            bench.say(f"hand-started worker FAILED: {exc}")
    finally:
        bench.kill_hand_worker()
        delete_hand_queue(bench)
        bench.say("starting the kit workers again")
        bench.supervisor("start")
    bench.say("kit workers drain the kit queue")
    out["kit"]["drain"] = bench.script(
        [
            "celery_load.py",
            "drain",
            "--ids-file",
            "kit.ids",
            "--max-seconds",
            str(bench.args.max_seconds),
        ]
    )
    out["kit"]["workers"] = {
        h.name: {
            g["name"]: {k: g.get(k) for k in ("queues", "concurrency", "numprocs")}
            for g in h.vars["celery_worker_groups"]
        }
        for h in bench.workers
    }
    for key in ("kit", "hand"):
        span = out[key].get("drain", {}).get("span_seconds") or 0
        if span < 20:
            bench.say(f"WARNING: {key} drain took {span:.1f}s (< 20 s): raise BENCH_TASKS")
    return out


def ensure_wrk(bench: Bench) -> None:
    bench.say("installing wrk if missing", bench.driver.name)
    bench.driver.run(
        "command -v wrk >/dev/null || { export DEBIAN_FRONTEND=noninteractive; "
        "apt-get install -y -q wrk >/dev/null 2>&1 || "
        "{ apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }; }",
        timeout=600,
    )


def wait_until_kit_queue_empty(bench: Bench) -> dict[str, Any]:
    bench.say("waiting until the kit queue is empty again (jobs POSTed by wrk)")
    return bench.script(
        ["celery_load.py", "wait-empty", "--max-seconds", str(bench.args.max_seconds)]
    )


def phase_http(bench: Bench) -> dict[str, Any]:
    driver = bench.driver
    ensure_wrk(bench)
    a = bench.args
    wrk = f"wrk -t{a.wrk_threads} -c{a.wrk_connections} -d{a.wrk_duration}s --latency"
    out: dict[str, Any] = {"from": driver.name, "command": wrk}
    for key, target in (("ping", "/ping"), ("post_jobs", "/api/jobs")):
        script = f" -s {bench.workdir}/post_job.lua" if key == "post_jobs" else ""
        command = f"{wrk}{script} {bench.web_url}{target}"
        bench.say(command, driver.name)
        result = driver.run(command, timeout=a.wrk_duration + 60)
        out[key] = {**parse_wrk(result.stdout), "url": f"{bench.web_url}{target}"}
    out["queue_after"] = wait_until_kit_queue_empty(bench)
    return out


def phase_e2e(bench: Bench) -> dict[str, Any]:
    a = bench.args
    bench.say(f"{a.e2e_rate:g} jobs/s for {a.e2e_seconds:g}s -> {bench.web_url}", "control node")
    return e2e_latency.run(bench.web_url, rate=a.e2e_rate, seconds=a.e2e_seconds)


def timed_site_yml(bench: Bench, phase: str, key: str, overrides: dict[str, str]) -> dict[str, Any]:
    """One timed `ansible-playbook site.yml`, logged to <run id>-<phase>-<key>.log; fails if it
    fails."""
    log = bench.args.results_dir / f"{bench.run_id}-{phase}-{key}.log"
    bench.say(f"ansible-playbook site.yml ({key}), log {log.name}", "control node")
    run = provision.timed_site_run(bench.args.inventory, log, overrides, timeout=3600)
    bench.say(f"{key}: {run['seconds']:.0f}s, changed={run['changed']}")
    if run["exit_code"] != 0:
        raise RuntimeError(f"site.yml failed ({key}); see {log}")
    return run


def phase_provision(bench: Bench) -> dict[str, Any]:
    out: dict[str, Any] = provision.cold_from_phases()
    for key, overrides in (
        ("warm_default", {}),
        ("warm_without_pipelining", provision.WITHOUT_PIPELINING),
    ):
        out[key] = timed_site_yml(bench, "provision", key, overrides)
    return out


SWEEP_GRID = [(c, p) for c in (1, 2, 4) for p in (1, 4)]


@dataclass(frozen=True)
class Workload:
    name: str
    tasks: int
    sleep_pattern: str  # "" for no-ops
    all_workers: bool  # hand workers on every worker host, or on the driver only
    metric: str  # the drain figure the points are compared on


def sweep_point(bench: Bench, load: Workload, concurrency: int, prefetch: int) -> dict[str, Any]:
    """One grid point: fill bench-hand, drain it with hand workers, report the drain."""
    point: dict[str, Any] = {"concurrency": concurrency, "prefetch": prefetch}
    helpers = bench.workers[1:] if load.all_workers else []
    worker_args = ["--queue", HAND_QUEUE, "--concurrency", str(concurrency)]
    worker_args += ["--prefetch", str(prefetch), "--max-seconds", str(bench.args.max_seconds)]
    extra = ["--sleep-pattern", load.sleep_pattern] if load.sleep_pattern else []
    bench.say(f"{load.name}: concurrency {concurrency}, prefetch {prefetch}")
    try:
        point["publish"] = publish(bench, HAND_QUEUE, load.tasks, "sweep.ids", extra)
        with ThreadPoolExecutor(max_workers=max(1, len(helpers))) as pool:
            started = [
                pool.submit(
                    host.app_script,
                    bench.workdir,
                    ["celery_load.py", "hand-worker", "--stop-file", "stop", *worker_args],
                    bench.step_timeout,
                )
                for host in helpers
            ]
            try:
                drain = hand_drain(bench, "sweep.ids", concurrency, prefetch)
            finally:
                for host in helpers:
                    host.run(f"touch {shlex.quote(bench.workdir)}/stop", timeout=30, check=False)
            point["helpers"] = [f.result() for f in started]
        point.update(rate=drain.get(load.metric), drain=drain)
        if drain.get("timed_out"):
            point["error"] = "timed out"
    except Exception as exc:
        point["error"] = str(exc)
    finally:
        for host in [bench.driver, *helpers]:
            bench.kill_hand_worker(host)
        delete_hand_queue(bench)
    return point


def phase_sweep(bench: Bench) -> dict[str, Any]:
    """Hand-started workers over a concurrency x prefetch grid, for short and for long tasks."""
    args = bench.args
    loads = [
        Workload("short", args.sweep_tasks, "", all_workers=False, metric="steady_rate"),
        Workload(
            "long", args.sweep_long_tasks, args.sweep_long_pattern, all_workers=True, metric="rate"
        ),
    ]
    deadline = time.monotonic() + args.sweep_max_seconds
    out: dict[str, Any] = {}
    bench.say("pausing the kit workers for the sweep")
    bench.supervisor("stop")
    try:
        for host in bench.workers[1:]:
            bench.say(f"copying bench/remote to {bench.workdir}", host.name)
            host.make_workdir(bench.workdir, remote_files())
        for load in loads:
            points = []
            for concurrency, prefetch in SWEEP_GRID:
                if time.monotonic() > deadline:
                    break
                points.append(sweep_point(bench, load, concurrency, prefetch))
            good = [p for p in points if "error" not in p and p.get("rate")]
            fastest = max(good, key=lambda p: p["rate"], default=None)
            out[load.name] = {
                "tasks_per_point": load.tasks,
                "sleep_pattern": load.sleep_pattern or None,
                "worker_hosts": [
                    h.name for h in (bench.workers if load.all_workers else [bench.driver])
                ],
                "metric": load.metric,
                "points": points,
                "fastest": {k: fastest[k] for k in ("concurrency", "prefetch", "rate")}
                if fastest
                else None,
                "partial": len(good) < len(SWEEP_GRID),
            }
    finally:
        bench.say("starting the kit workers again")
        bench.supervisor("start")
    return out


PYSPY_VENV = "/tmp/kitbench-pyspy"
APP_PACKAGE = "kitapp"  # the example app the bench drives (its tasks and endpoints)
# lxc-net's address reservations, written by vagrant/host-setup.sh from vagrant/hosts.yml.
DHCP_RESERVATIONS = Path("/etc/lxc/celerykit-dhcp-hosts.conf")


PYSPY_RATE = 100  # samples per second


def ensure_pyspy(bench: Bench, host: Host) -> None:
    bench.say(f"installing py-spy into {PYSPY_VENV} (PyPI)", host.name)
    host.run(
        f"test -x {PYSPY_VENV}/bin/py-spy || {{ python3 -m venv {PYSPY_VENV} && "
        f"{PYSPY_VENV}/bin/pip install -q --disable-pip-version-check py-spy; }}",
        timeout=600,
    )


def phase_profile(bench: Bench) -> dict[str, Any]:
    """py-spy samples the web host's gunicorn workers while wrk posts jobs through nginx."""
    a = bench.args
    web = Host(bench.web_name, bench.kit_vars[bench.web_name], a.inventory)
    ensure_pyspy(bench, web)
    user = shlex.quote(web.app_user)
    master = web.run(f"pgrep -o -u {user} -f gunicorn", timeout=30).stdout.strip()
    output = f"/tmp/kitbench-profile-{bench.run_id}.txt"
    record = (
        f"{PYSPY_VENV}/bin/py-spy record --pid {master} --subprocesses --idle --full-filenames "
        f"--rate {PYSPY_RATE} "
        f"--duration {a.profile_seconds} --format raw --output {output}"
    )
    wrk = (
        f"wrk -t{a.wrk_threads} -c{a.wrk_connections} -d{a.profile_seconds + 4}s "
        f"-s {bench.workdir}/post_job.lua {bench.web_url}/api/jobs"
    )
    ensure_wrk(bench)
    with ThreadPoolExecutor(max_workers=1) as pool:
        bench.say(wrk, bench.driver.name)
        load = pool.submit(bench.driver.run, wrk, a.profile_seconds + 60)
        time.sleep(2)
        bench.say(record, web.name)
        web.run(record, timeout=a.profile_seconds + 60)
        wrk_out = parse_wrk(load.result().stdout)
    raw = web.run(f"cat {output} && rm -f {output}", timeout=60).stdout
    wait_until_kit_queue_empty(bench)
    return {
        "host": web.name,
        "gunicorn_master_pid": int(master),
        "command": record,
        "load": {"command": wrk, "requests_per_s": wrk_out["requests_per_s"]},
        # Only the request threads' time inside the app's code (the package gunicorn serves).
        **pyspy_profile.summarize(pyspy_profile.parse_collapsed(raw), within=APP_PACKAGE),
    }


def program_globs(host: Host) -> str:
    """The host's kit worker programs as supervisorctl arguments (every process of each group)."""
    return " ".join(f"{name}:*" for name in worker_programs(host.vars))


def phase_worker_profile(bench: Bench) -> dict[str, Any]:
    """One worker host's kit workers drain a queue filled beforehand, every other kit worker
    paused. The kernel counts their CPU time (main processes, pool children) and every
    container's over the window; py-spy (no --idle) samples where their non-idle time goes; the
    tasks done within the window turn CPU seconds into CPU ms per task."""
    a = bench.args
    host = bench.driver
    ensure_pyspy(bench, host)
    programs = program_globs(host)
    output = f"/tmp/kitbench-worker-profile-{bench.run_id}"
    bench.say("pausing the kit workers (queue fills while nothing consumes)")
    bench.supervisor("stop")
    try:
        published = publish(bench, None, a.profile_tasks, "profile.ids")
        bench.say("starting only this host's kit workers", host.name)
        status = bench.supervisor("start", [host])[0]
        pids = [int(pid) for pid in re.findall(r"RUNNING +pid (\d+)", status)]
        if not pids:
            raise RemoteError(f"{host.name}: no kit worker RUNNING after start: {status.strip()}")
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
        bench.supervisor("start")
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


def phase_scale(bench: Bench) -> dict[str, Any]:
    """Warm site.yml on the default cluster, then on twice the hosts (the scale_out machines of
    vagrant/hosts.yml, started here and left running: `make down` removes them)."""
    machines = yaml.safe_load((ROOT / "vagrant" / "hosts.yml").read_text())["machines"]
    extra = [m["name"] for m in machines if m.get("scale_out")]
    default = [m["name"] for m in machines if not m.get("scale_out")]
    if sorted(bench.kit_vars) != sorted(default):
        raise RuntimeError(
            f"the inventory must be the default cluster ({', '.join(default)}) to start with; "
            f"it is {', '.join(sorted(bench.kit_vars))}"
        )
    reserved = DHCP_RESERVATIONS.read_text() if DHCP_RESERVATIONS.exists() else ""
    unreserved = [m["mac"] for m in machines if m.get("scale_out") and m["mac"] not in reserved]
    if os.environ.get("VAGRANT_DEFAULT_PROVIDER", "lxc") == "lxc" and unreserved:
        raise RuntimeError(
            f"{DHCP_RESERVATIONS} has no address for the scale_out machines ({len(unreserved)} "
            "MACs missing): run `make down host up` (host-setup restarts LXC networking, so "
            "only with the cluster down)"
        )
    out: dict[str, Any] = {"hosts_default": len(default), "hosts_doubled": len(default + extra)}

    out["warm_default"] = timed_site_yml(bench, "scale", "warm_default", {})
    bench.say(f"vagrant up --no-provision {' '.join(extra)}", "control node")
    started = time.perf_counter()
    subprocess.run(
        ["vagrant", "up", "--no-provision", *extra], cwd=ROOT, check=True, stdout=sys.stderr
    )
    out["vagrant_up_seconds"] = time.perf_counter() - started
    for key in ("scale_out_first_run", "warm_doubled"):
        out[key] = timed_site_yml(bench, "scale", key, {})
    batched = provision.serial_plays(ROOT / "ansible" / "site.yml")
    out["serial_plays"] = batched
    for key in ("warm_default", "scale_out_first_run", "warm_doubled"):
        out[key]["serial_seconds"] = provision.serial_seconds(out[key], batched)
    return out


PHASES: dict[str, tuple[str, Callable[[Bench], dict[str, Any]]]] = {
    "ceiling": ("broker_ceiling", phase_ceiling),
    "celery": ("celery", phase_celery),
    "http": ("http", phase_http),
    "e2e": ("e2e_latency", phase_e2e),
    "provision": ("provision", phase_provision),
    "sweep": ("sweep", phase_sweep),
    "profile": ("profile", phase_profile),
    "worker-profile": ("worker_profile", phase_worker_profile),
    "scale": ("scale", phase_scale),
}


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    progress = Progress()
    run_id = time.strftime("%Y%m%dT%H%M%S")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    try:
        bench = preflight(args, progress, run_id)
    except (ClusterNotUp, RemoteError) as exc:
        print(
            f"\nmake bench: the cluster is not up or not deployed:\n  {exc}\n"
            "Bring it up with `make up` (or provision it) and run `make bench` again.",
            file=sys.stderr,
        )
        return 2

    results: dict[str, Any] = {
        "run_id": run_id,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "inventory": str(args.inventory),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "hosts": {
            "loads_from": bench.driver.name,
            "workers": [h.name for h in bench.workers],
            "web": bench.web_name,
            "web_url": bench.web_url,
        },
        "queue_type": bench.kit_vars[bench.driver.name]["kitapp_queue_type"],
        "phases": {},
        "phase_seconds": {},
    }
    if "provision" not in args.phase_list:
        results["phases"]["provision"] = {
            "skipped": "set BENCH_PROVISION=1",
            **provision.cold_from_phases(),
        }
    failed = False
    try:
        for name in args.phase_list:
            key, func = PHASES[name]
            progress.begin(name)
            try:
                results["phases"][key] = func(bench)
            except Exception as exc:
                failed = True
                results["phases"][key] = {"error": f"{type(exc).__name__}: {exc}"}
                progress.say(f"FAILED: {exc}")
                traceback.print_exc(file=sys.stderr)
            results["phase_seconds"][name] = round(progress.phase_seconds(), 1)
            progress.say(f"done in {progress.phase_seconds():.1f}s")
    finally:
        progress.begin("cleanup")
        parallel(
            lambda host: host.run(f"rm -rf {shlex.quote(bench.workdir)}", timeout=30, check=False),
            bench.workers,
        )

    results["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    results["ratios"] = compute_ratios(results["phases"])
    json_path = args.results_dir / f"{run_id}.json"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    png_path = chart.draw(results, args.results_dir / f"{run_id}.png")
    print(format_table(table_rows(results["phases"]), results["ratios"]))
    print(f"\nwrote {shown(json_path)} and {shown(png_path)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
