"""`make bench`: throughput and latency of the running cluster, as ratios measured in one run.

Phases (each bounded in count and time; all load goes to the cluster's own hosts):
  ceiling    raw AMQP publish/consume (kombu) from a worker host, with the kit's guarantees
  celery     N kitapp.noop tasks through the kit's workers, and the same N through a worker
             started by hand the tutorial's way (`celery -A kitapp.celery_app worker`)
  http       wrk on a worker host against POST /api/jobs and GET /ping (nginx -> gunicorn)
  e2e        POST /api/jobs -> GET reports SUCCESS, at a light steady rate, from this machine
  provision  (BENCH_PROVISION=1) warm site.yml with the kit's strategy and the stock one
  sweep      (BENCH_SWEEP=1) hand-started workers, concurrency {1,2,4} x prefetch {1,4}: short
             tasks (no-ops, one worker host) and long ones (sleeps of mixed length, every
             worker host)
  scale      (BENCH_SCALE=1) warm site.yml on the default cluster, then on twice the hosts
             (vagrant/hosts.yml's scale_out machines, started here and left running)
  profile    (BENCH_PROFILE=1) py-spy on a web host's gunicorn while wrk posts jobs
  worker-profile  (BENCH_PROFILE=1) py-spy on one worker host's kit workers draining a queue
             filled beforehand (every other kit worker paused): CPU per task, and where it goes

Each phase is bench/phases/<name>.py; the kit's workers are stopped and started through the
host's process manager (supervisor or systemd) the way the tests do it (tests/app_processes.py).
Prints progress to stderr and the table to stdout; writes bench/results/<run id>.json and
bench/results/<run id>.png. Exit status: 0 all phases ran, 1 a phase failed, 2 the cluster is
not up.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import chart
import provision
import requests
from cluster import (
    DEFAULT_INVENTORY,
    ROOT,
    ClusterNotUp,
    Host,
    RemoteError,
    parallel,
    remote_files,
    resolve_vars,
)
from cluster_runs import front_end_ca_bundle, front_end_url  # on sys.path through cluster
from phases import ceiling, celery, e2e, http, profile, scale, sweep, worker_profile
from phases import provision as provision_phase
from progress import Progress
from report import compute_ratios, format_table, table_rows

RESULTS_DIR = Path(__file__).resolve().parent / "results"
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
        return front_end_url(self.kit_vars[self.web_name])

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

    def kit_workers(self, action: str, hosts: list[Host] | None = None) -> list[dict[str, int]]:
        """stop/start every kit worker process on every worker host, or on the given ones (all at
        once), through the host's process manager; checks they all reached the state and returns
        each host's {process: main pid}."""

        def one(host: Host) -> dict[str, int]:
            self.say(f"{action} {' '.join(host.kit_workers())}", host.name)
            return host.control_workers(action)

        return parallel(one, self.workers if hosts is None else hosts)

    def kill_hand_worker(self, host: Host | None = None) -> None:
        pid_file = shlex.quote(f"{self.workdir}/hand-worker.pid")
        (host or self.driver).run(
            f"if [ -f {pid_file} ]; then kill -KILL -- -$(cat {pid_file}) 2>/dev/null; "
            f"rm -f {pid_file}; fi; true",
            timeout=30,
            check=False,
        )


def preflight(args: argparse.Namespace, progress: Progress, run_id: str) -> Bench:
    progress.begin("preflight")
    progress.say(f"resolving variables of {args.inventory}")
    kit_vars = resolve_vars(args.inventory)
    # The control node's requests verify the front end's certificate against the CA that issued it
    # (wrk, on a worker host, does not verify certificates).
    ca_bundle = next(
        (front_end_ca_bundle(hv) for hv in kit_vars.values() if "web" in hv["groups"]), None
    )
    if ca_bundle:
        os.environ["REQUESTS_CA_BUNDLE"] = ca_bundle
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
            f"test -x {base}/bin/with-env && test -x {base}/current/bin/python",
            timeout=30,
            check=False,
        )
        if probe.rc != 0:
            return f"{host.name}: no {base}/bin/with-env or release (is the app deployed?)"
        try:
            for name in host.kit_workers():
                state = host.processes.state(name)[0]
                if state != "RUNNING":
                    return (
                        f"{host.name}: kit worker {name} is not RUNNING ({state}; "
                        "is the app deployed?)"
                    )
        except Exception as exc:  # the process manager's answer did not parse, or none came
            return f"{host.name}: kit workers' state unknown ({type(exc).__name__}: {exc})"
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


PHASES: dict[str, tuple[str, Callable[[Bench], dict[str, Any]]]] = {
    "ceiling": ("broker_ceiling", ceiling.run),
    "celery": ("celery", celery.run),
    "http": ("http", http.run),
    "e2e": ("e2e_latency", e2e.run),
    "provision": ("provision", provision_phase.run),
    "sweep": ("sweep", sweep.run),
    "profile": ("profile", profile.run),
    "worker-profile": ("worker_profile", worker_profile.run),
    "scale": ("scale", scale.run),
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
