#!/usr/bin/env python3
"""Restart this host's Celery workers that are running but no longer answer or consume.

A worker whose broker connection died silently (a dropped link, a broker that vanished without
closing it) keeps running: the process manager sees a live process and leaves it be, while the
worker takes no task. Each check asks every worker the process manager reports running, through
the broker, for a ping and for the queues it consumes. A worker that misses `--misses` checks in
a row (no answer, or one of its queues missing) is ended (SIGKILL) and its process manager
starts it again. A worker its process manager gave up on (supervisor's FATAL after its start
retries, systemd's failed) is started again: a worker that lost its broker link and reconnected
can fail to start for as long as the broker keeps its old connection (RESOURCE_LOCKED on its
remote-control queue), and supervisor gives up after a few seconds of that.

Usage (root, with the app's environment and the release's Python; the celery_watchdog role's
timer runs it):
  with-env <release>/bin/python celery-watchdog --app MODULE --manager supervisor \\
      --state /run/APP-watchdog/state.json --misses 3 --timeout 5 --ask-as APP_USER \\
      NODE_PREFIX=CONTROL=QUEUE[,QUEUE...] ...
NODE_PREFIX is the worker's node name before "@" (<group>-<instance>); "@<this host's name>" is
added, as Celery's %h does.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Worker:
    node: str  # Celery node name, <group>-<instance>@<host>
    control: str  # the process manager's name for it
    queues: frozenset[str]


def parse_worker(spec: str, hostname: str) -> Worker:
    prefix, control, queues = spec.split("=", 2)
    return Worker(f"{prefix}@{hostname}", control, frozenset(q for q in queues.split(",") if q))


def healthy(worker: Worker, answered: set[str], consumed: dict[str, set[str]]) -> bool:
    """It answered the ping and consumes every queue of its group."""
    return worker.node in answered and worker.queues <= consumed.get(worker.node, set())


def decide(
    workers: list[Worker],
    running: dict[str, int],
    answered: set[str],
    consumed: dict[str, set[str]],
    state: dict[str, dict[str, int]],
    misses: int,
) -> tuple[dict[str, dict[str, int]], list[Worker]]:
    """The new state ({node: {pid, missed}}) and the workers to restart.

    running maps each worker's control name to its main pid, for the workers the process manager
    reports running: a stopped or starting worker is not judged. A new pid (the manager restarted
    it) starts counting from zero; a restarted worker starts from zero too.
    """
    new_state: dict[str, dict[str, int]] = {}
    restart: list[Worker] = []
    for worker in workers:
        pid = running.get(worker.control)
        if not pid:
            continue
        before = state.get(worker.node, {})
        missed = before.get("missed", 0) if before.get("pid") == pid else 0
        missed = 0 if healthy(worker, answered, consumed) else missed + 1
        if missed >= misses:
            restart.append(worker)
            missed = 0
        new_state[worker.node] = {"pid": pid, "missed": missed}
    return new_state, restart


def supervisor_pid(status_line: str) -> int:
    """The main pid in a `supervisorctl status NAME` line, when its state is RUNNING (a worker
    that is STARTING or STOPPING, in a warm shutdown that waits for its tasks, is not judged)."""
    words = status_line.replace(",", " ").split()
    if len(words) >= 4 and words[1] == "RUNNING" and words[2] == "pid" and words[3].isdigit():
        return int(words[3])
    return 0


def supervisor_gave_up(status_line: str) -> bool:
    """The program is FATAL: supervisor stopped retrying to start it (an operator's stop is
    STOPPED, never FATAL)."""
    words = status_line.split()
    return len(words) >= 2 and words[1] == "FATAL"


def manager_view(manager: str, workers: list[Worker]) -> tuple[dict[str, int], list[Worker]]:
    """Main pid of each worker the process manager reports running (not starting or stopping),
    and the workers it gave up starting."""
    running: dict[str, int] = {}
    given_up: list[Worker] = []
    for worker in workers:
        if manager == "supervisor":
            argv = ["supervisorctl", "status", worker.control]
            text = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
            pid = supervisor_pid(text.strip())
            gave_up = supervisor_gave_up(text.strip())
        else:
            argv = ["systemctl", "show", "--property=ActiveState,MainPID", worker.control]
            text = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
            props = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
            active = props.get("ActiveState") == "active"
            pid = int(props.get("MainPID", "0") or 0) if active else 0
            gave_up = props.get("ActiveState") == "failed"
        if pid > 0:
            running[worker.control] = pid
        if gave_up:
            given_up.append(worker)
    return running, given_up


def start_again(manager: str, worker: Worker) -> None:
    """Starts a worker its process manager gave up on."""
    if manager == "systemd":
        subprocess.run(["systemctl", "reset-failed", worker.control], check=False)
        subprocess.run(["systemctl", "start", "--no-block", worker.control], check=False)
    else:
        subprocess.run(["supervisorctl", "start", worker.control], capture_output=True, check=False)


def end_for_restart(manager: str, worker: Worker, pid: int) -> None:
    """SIGKILL to every process of the worker; its process manager starts it again (supervisor's
    autorestart, systemd's Restart=always). Not a warm shutdown: that would wait on the dead
    connection, and the worker's tasks cannot be acknowledged over it anyway; their messages go
    back to the queue once the broker drops that connection."""
    if manager == "systemd":
        subprocess.run(["systemctl", "kill", "--signal=SIGKILL", worker.control], check=False)
        return
    try:
        if os.getpgid(pid) == pid:  # supervisor's program: the worker leads its process group
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def ask_workers(app: Any, nodes: list[str], timeout: float) -> tuple[set[str], dict[str, set[str]]]:
    """The nodes that answered a ping, and the queues each says it consumes."""
    answered: set[str] = set()
    for reply in app.control.ping(destination=nodes, timeout=timeout) or []:
        answered.update(reply)
    queues = app.control.inspect(destination=nodes, timeout=timeout).active_queues() or {}
    consumed = {node: {q["name"] for q in entries or []} for node, entries in queues.items()}
    return answered, consumed


def load_state(path: str) -> dict[str, dict[str, int]]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def save_state(path: str, state: dict[str, dict[str, int]]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".new", "w") as f:
        json.dump(state, f)
    os.replace(path + ".new", path)


def ask_as(
    user: str, app: str, nodes: list[str], timeout: float
) -> tuple[set[str], dict[str, set[str]]]:
    """ask_workers, run as the app's user (the project's code is imported there, never as root)."""
    argv = ["runuser", "-u", user, "--", sys.executable, os.path.abspath(__file__), "--ask-only"]
    argv += [f"--app={app}", f"--timeout={timeout}", *nodes]
    result = subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=4 * timeout + 30
    )
    if result.returncode != 0:
        raise RuntimeError((result.stderr.strip().splitlines() or ["no output"])[-1])
    answer = json.loads(result.stdout)
    return set(answer["answered"]), {node: set(q) for node, q in answer["consumed"].items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", required=True)
    parser.add_argument("--manager", choices=["supervisor", "systemd"])
    parser.add_argument("--state")
    parser.add_argument("--misses", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--ask-as", help="ask the workers as this user (the check runs as root)")
    parser.add_argument(
        "--ask-only", action="store_true", help="print the workers' answers, as JSON"
    )
    parser.add_argument("workers", nargs="+", metavar="NODE_PREFIX=CONTROL=QUEUES")
    args = parser.parse_args(argv)

    if args.ask_only:  # the workers are node names here
        from celery.app.utils import find_app

        answered, consumed = ask_workers(find_app(args.app), args.workers, args.timeout)
        print(
            json.dumps(
                {
                    "answered": sorted(answered),
                    "consumed": {n: sorted(q) for n, q in consumed.items()},
                }
            )
        )
        return 0
    if not args.manager or not args.state or not args.ask_as:
        parser.error("--manager, --state and --ask-as are required")

    hostname = socket.gethostname()
    workers = [parse_worker(spec, hostname) for spec in args.workers]
    running, given_up = manager_view(args.manager, workers)
    for worker in given_up:
        print(
            f"celery-watchdog: {worker.node} ({worker.control}) failed to start and its process "
            "manager gave up: starting it again"
        )
        start_again(args.manager, worker)
    nodes = [w.node for w in workers if w.control in running]
    answered: set[str] = set()
    consumed: dict[str, set[str]] = {}
    if nodes:
        try:
            answered, consumed = ask_as(args.ask_as, args.app, nodes, args.timeout)
        except Exception as error:  # the broker unreachable from here: judge nobody
            print(f"celery-watchdog: cannot ask the workers ({error}); no worker judged")
            return 0
    state, restart = decide(
        workers, running, answered, consumed, load_state(args.state), args.misses
    )
    for worker in restart:
        print(
            f"celery-watchdog: {worker.node} ({worker.control}) missed {args.misses} checks "
            "in a row (no answer, or a queue not consumed): restarting it"
        )
        end_for_restart(args.manager, worker, running[worker.control])
    for worker in workers:
        if worker.control in running and worker.node in state and worker not in restart:
            missed = state[worker.node]["missed"]
            if missed:
                print(f"celery-watchdog: {worker.node} missed {missed} check(s) in a row")
    save_state(args.state, state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
