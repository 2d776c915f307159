"""Steps several phases share: Celery loads through bench/remote/celery_load.py, tools installed
on a host (wrk, py-spy), and a timed site.yml run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import provision

if TYPE_CHECKING:
    from cluster import Host
    from run import Bench

HAND_QUEUE = "bench-hand"
PYSPY_VENV = "/tmp/kitbench-pyspy"
PYSPY_RATE = 100  # samples per second


def queue_room(bench: Bench, wanted: int) -> int:
    """How many messages a phase may put in one queue at once: what it wants, at most 90 % of the
    app vhost's max-length (kitapp_queue_max_length; the broker refuses publishes past it, and
    beat and the web front end publish too). Says so when it cuts the count."""
    limits = [
        int(hv["kitapp_queue_max_length"])
        for hv in bench.kit_vars.values()
        if "kitapp_queue_max_length" in hv
    ]
    if not limits:
        return wanted
    room = min(limits) * 9 // 10
    if wanted > room:
        bench.say(
            f"{wanted} messages would pass the queues' max-length {min(limits)}: using {room}"
        )
        return room
    return wanted


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


def wait_until_kit_queue_empty(bench: Bench) -> dict[str, Any]:
    bench.say("waiting until the kit queue is empty again (jobs POSTed by wrk)")
    return bench.script(
        ["celery_load.py", "wait-empty", "--max-seconds", str(bench.args.max_seconds)]
    )


def ensure_wrk(bench: Bench) -> None:
    bench.say("installing wrk if missing", bench.driver.name)
    bench.driver.run(
        "command -v wrk >/dev/null || { export DEBIAN_FRONTEND=noninteractive; "
        "apt-get install -y -q wrk >/dev/null 2>&1 || "
        "{ apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }; }",
        timeout=600,
    )


def ensure_pyspy(bench: Bench, host: Host) -> None:
    bench.say(f"installing py-spy into {PYSPY_VENV} (PyPI)", host.name)
    host.run(
        f"test -x {PYSPY_VENV}/bin/py-spy || {{ python3 -m venv {PYSPY_VENV} && "
        f"{PYSPY_VENV}/bin/pip install -q --disable-pip-version-check py-spy; }}",
        timeout=600,
    )


def timed_site_yml(
    bench: Bench,
    phase: str,
    key: str,
    overrides: dict[str, str],
    playbook: str = "site.yml",
    extra_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One timed `ansible-playbook site.yml` (or another playbook), logged to
    <run id>-<phase>-<key>.log; fails if it fails."""
    log = bench.args.results_dir / f"{bench.run_id}-{phase}-{key}.log"
    bench.say(f"ansible-playbook {playbook} ({key}), log {log.name}", "control node")
    run = provision.timed_site_run(
        bench.args.inventory, log, overrides, timeout=3600, playbook=playbook, extra_args=extra_args
    )
    bench.say(f"{key}: {run['seconds']:.0f}s, changed={run['changed']}")
    if run["exit_code"] != 0:
        raise RuntimeError(f"{playbook} failed ({key}); see {log}")
    return run
