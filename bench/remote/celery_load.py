"""Celery load on a worker host: publish no-op tasks, wait for them, run a hand-started worker.

Runs as the app user through the app's with-env, so the broker, the result store and every
durability setting come from the deployed environment file (kitapp.config.load_settings()).
Each subcommand prints one JSON object on stdout; every wait is bounded by --max-seconds.

  publish       send --count kitapp.noop tasks (or fewer if --max-seconds passes) to --queue
                (default: the kit's queue); their ids go to --ids-file. With --sleep-pattern
                (seconds, comma-separated), kitapp.sleep tasks instead, their durations cycling
                through the pattern (the sweep's "long tasks")
  drain         wait until the tasks in --ids-file have a result; the completion times come
                from the results' date_done, so worker start-up is not counted; with
                --window START,END (epoch seconds) also how many were done within it. With
                --hand-worker, first start `celery -A kitapp.celery_app worker -Q QUEUE` (the
                tutorial's way: no other options unless --concurrency/--prefetch are given) and
                stop it (warm shutdown, then KILL) when done. Result keys are deleted afterwards.
  hand-worker   run the same hand-started worker on this host until --stop-file exists (or
                --max-seconds pass), then stop it: the sweep's second worker host
  wait-empty    wait until --queue has no ready message
  delete-queue  delete a bench queue and its exchange (only names starting with "bench-")
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from celery import Celery
from stats import count_between, rate, steady_rate

NOOP = "kitapp.noop"
SLEEP = "kitapp.sleep"
CHUNK = 1000
READY = {"SUCCESS", "FAILURE", "REVOKED"}


def make_app(queue: str | None) -> Celery:
    """The kit's Celery app; with another queue name, the same settings on that queue."""
    from kitapp.celery_app import create_celery_app
    from kitapp.config import load_settings

    settings = load_settings()
    if queue and queue != settings.default_queue:
        settings = replace(settings, default_queue=queue)
    return create_celery_app(settings)


def chunks(items: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def epoch(date_done: Any) -> float | None:
    if date_done is None:
        return None
    if isinstance(date_done, datetime):
        moment = date_done
    else:
        moment = datetime.fromisoformat(str(date_done))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def publish(args: argparse.Namespace) -> dict:
    app = make_app(args.queue)
    queue = app.conf.task_queues[0]
    deadline = time.monotonic() + args.max_seconds
    ids: list[str] = []
    with app.connection_for_write() as conn:
        queue(conn.default_channel).declare()
    pattern = [float(x) for x in args.sleep_pattern.split(",")] if args.sleep_pattern else []
    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        while len(ids) < args.count and time.monotonic() < deadline:
            if pattern:
                seconds = pattern[len(ids) % len(pattern)]
                ids.append(app.send_task(SLEEP, args=[seconds], producer=producer).id)
            else:
                ids.append(app.send_task(NOOP, producer=producer).id)
    seconds = time.perf_counter() - started
    Path(args.ids_file).write_text("\n".join(ids) + "\n")
    return {
        "queue": queue.name,
        "queue_type": app.kitapp_settings.queue_type,
        "requested": args.count,
        "sent": len(ids),
        "seconds": seconds,
        "rate": rate(len(ids), seconds),
    }


def wait_for_results(
    app: Celery,
    ids: list[str],
    deadline: float,
    alive: Callable[[], bool],
    poll: float = 0.5,
    window: tuple[float, float] | None = None,
) -> dict:
    """Polls the result store until every id is ready; deletes the result keys at the end."""
    backend = app.backend
    if not hasattr(backend, "client"):
        raise RuntimeError("the drain needs a Redis result backend (KITAPP_RESULT_BACKEND)")
    pending = list(ids)
    done: list[float] = []
    states: dict[str, int] = {}
    started = time.monotonic()
    while pending and time.monotonic() < deadline and alive():
        still: list[str] = []
        for chunk in chunks(pending):
            values = backend.mget([backend.get_key_for_task(tid) for tid in chunk])
            for tid, raw in zip(chunk, values, strict=True):
                meta = backend.decode_result(raw) if raw is not None else None
                if meta is None or meta.get("status") not in READY:
                    still.append(tid)
                    continue
                states[meta["status"]] = states.get(meta["status"], 0) + 1
                moment = epoch(meta.get("date_done"))
                if moment is not None:
                    done.append(moment)
        pending = still
        if pending:
            time.sleep(poll)
    waited = time.monotonic() - started
    for chunk in chunks(ids):
        backend.client.delete(*[backend.get_key_for_task(tid) for tid in chunk])
    done.sort()
    span = done[-1] - done[0] if len(done) > 1 else 0.0
    in_window = {}
    if window:
        in_window = {
            "done_in_window": count_between(done, *window),
            "done_after_window": count_between(done, window[1], float("inf")),
        }
    return {
        **in_window,
        "expected": len(ids),
        "done": len(done),
        "states": states,
        "missing": len(pending),
        "timed_out": bool(pending),
        "waited_seconds": waited,
        "span_seconds": span,
        "rate": rate(len(done) - 1, span),
        "steady_rate": steady_rate(done),
    }


def start_hand_worker(args: argparse.Namespace) -> subprocess.Popen:
    """`celery -A kitapp.celery_app worker -Q QUEUE`, from the app's own virtualenv."""
    celery = Path(sys.executable).with_name("celery")
    command = [str(celery), "-A", "kitapp.celery_app", "worker", "-Q", args.queue]
    command += ["-n", f"{args.queue}@%h"]
    if args.concurrency:
        command += ["--concurrency", str(args.concurrency)]
    env = {**os.environ, "KITAPP_DEFAULT_QUEUE": args.queue}
    if args.prefetch:
        env["KITAPP_PREFETCH_MULTIPLIER"] = str(args.prefetch)
    with open(args.log_file, "ab") as log:
        proc = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    Path(args.pid_file).write_text(f"{proc.pid}\n")
    return proc


def stop_worker(proc: subprocess.Popen, grace: float = 30) -> int:
    """Warm shutdown (TERM to the worker's process group), then KILL after grace seconds."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode


def drain(args: argparse.Namespace) -> dict:
    from kitapp.config import load_settings

    ids = [line for line in Path(args.ids_file).read_text().split() if line]
    app = make_app(args.queue)
    deadline = time.monotonic() + args.max_seconds
    out: dict[str, Any] = {"queue": app.conf.task_default_queue}
    if not args.hand_worker:
        window = None
        if args.window:
            start, end = (float(x) for x in args.window.split(","))
            window = (start, end)
        out.update(wait_for_results(app, ids, deadline, alive=lambda: True, window=window))
        return out
    proc = start_hand_worker(args)
    try:
        out.update(wait_for_results(app, ids, deadline, alive=lambda: proc.poll() is None))
    finally:
        out["worker_exit"] = stop_worker(proc)
        Path(args.pid_file).unlink(missing_ok=True)
    out["worker"] = {
        "command": f"celery -A kitapp.celery_app worker -Q {args.queue}",
        "concurrency": args.concurrency or os.cpu_count(),
        "concurrency_source": "--concurrency" if args.concurrency else "celery default (cpus)",
        "prefetch_multiplier": args.prefetch or load_settings().prefetch_multiplier,
        "prefetch_source": "override" if args.prefetch else "env file",
    }
    if out["missing"]:
        out["worker_log_tail"] = Path(args.log_file).read_text(errors="replace")[-2000:]
    return out


def hand_worker(args: argparse.Namespace) -> dict:
    stop_file = Path(args.stop_file)
    stop_file.unlink(missing_ok=True)
    proc = start_hand_worker(args)
    deadline = time.monotonic() + args.max_seconds
    try:
        while proc.poll() is None and not stop_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        stopped_by = "stop file" if stop_file.exists() else "worker exit or --max-seconds"
    finally:
        exit_code = stop_worker(proc)
        Path(args.pid_file).unlink(missing_ok=True)
        stop_file.unlink(missing_ok=True)
    return {"queue": args.queue, "worker_exit": exit_code, "stopped_by": stopped_by}


def queue_depth(app: Celery, name: str) -> tuple[int, int]:
    with app.connection_for_read() as conn:
        _, messages, consumers = conn.default_channel.queue_declare(name, passive=True)
    return messages, consumers


def wait_empty(args: argparse.Namespace) -> dict:
    app = make_app(args.queue)
    name = app.conf.task_default_queue
    started = time.monotonic()
    deadline = started + args.max_seconds
    messages, consumers = queue_depth(app, name)
    zeros = 0
    while time.monotonic() < deadline:
        messages, consumers = queue_depth(app, name)
        zeros = zeros + 1 if messages == 0 else 0
        if zeros >= 2:
            break
        time.sleep(0.5)
    return {
        "queue": name,
        "messages": messages,
        "consumers": consumers,
        "empty": messages == 0,
        "waited_seconds": time.monotonic() - started,
    }


def delete_queue(args: argparse.Namespace) -> dict:
    if not args.queue or not args.queue.startswith("bench-"):
        raise SystemExit(f"refusing to delete {args.queue!r}: only bench-* queues are deleted")
    app = make_app(args.queue)
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        channel.queue_delete(args.queue)
        channel.exchange_delete(args.queue)
    return {"queue": args.queue, "deleted": True}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True)
    for name, func in [
        ("publish", publish),
        ("drain", drain),
        ("hand-worker", hand_worker),
        ("wait-empty", wait_empty),
        ("delete-queue", delete_queue),
    ]:
        cmd = sub.add_parser(name)
        cmd.set_defaults(func=func)
        cmd.add_argument("--queue", default=None, help="default: the kit's queue")
        cmd.add_argument("--max-seconds", type=float, default=120)
        if name in ("publish", "drain"):
            cmd.add_argument("--ids-file", required=True)
        if name == "publish":
            cmd.add_argument("--count", type=int, required=True)
            cmd.add_argument("--sleep-pattern", default="", help="e.g. 1.0,0.1,0.1,0.1")
        if name == "drain":
            cmd.add_argument("--hand-worker", action="store_true")
            cmd.add_argument("--window", default="", help="START,END: count results done within")
        if name == "hand-worker":
            cmd.add_argument("--stop-file", required=True)
        if name in ("drain", "hand-worker"):
            cmd.add_argument("--concurrency", type=int, default=0, help="0: celery's default")
            cmd.add_argument("--prefetch", type=int, default=0, help="0: the env file's value")
            cmd.add_argument("--log-file", default="hand-worker.log")
            cmd.add_argument("--pid-file", default="hand-worker.pid")
    return top


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    hand = args.command == "hand-worker" or (args.command == "drain" and args.hand_worker)
    if hand and not args.queue:
        raise SystemExit("a hand worker needs --queue (a bench-* queue the kit does not consume)")
    try:
        out = args.func(args)
    except Exception as exc:
        out = {"error": f"{type(exc).__name__}: {exc}"}
    out["host"] = socket.gethostname()
    print(json.dumps(out))
    return 1 if "error" in out or out.get("timed_out") else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
