"""Reads a release's effective Celery configuration and prints its reliability settings as JSON.

Run by the celery_app role with the release's own Python and the app's environment (with-env),
before the release goes live:

    with-env <release>/bin/python celery-reliability --app CeleryApp

Prints {"settings": {...}, "warnings": [{"name": ..., "message": ...}]}; no secret is printed
(the result backend is reduced to its scheme). Exits 0 whatever it finds; 2 when the app does
not load (the import check before it says why).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from celery.app.utils import find_app

TASK_PREFIX_BUILTIN = "celery."


def _project_tasks_without(app: Any, attribute: str) -> list[str]:
    """Names of the project's tasks (Celery's own left out) whose effective `attribute` is off."""
    return sorted(
        name
        for name, task in app.tasks.items()
        if not name.startswith(TASK_PREFIX_BUILTIN) and not getattr(task, attribute, False)
    )


def read_settings(app: Any) -> dict[str, Any]:
    """The settings that decide whether a task or a result can be lost."""
    conf = app.conf
    app.loader.import_default_modules()  # the task modules, so per-task options are seen
    backend = str(conf.result_backend or "")
    transport_options = conf.broker_transport_options or {}
    return {
        "task_acks_late": bool(conf.task_acks_late),
        "tasks_acking_early": _project_tasks_without(app, "acks_late"),
        "task_reject_on_worker_lost": bool(conf.task_reject_on_worker_lost),
        "confirm_publish": bool(transport_options.get("confirm_publish", False)),
        "worker_prefetch_multiplier": conf.worker_prefetch_multiplier,
        "result_backend": backend.split(":", 1)[0] if backend else "",
        "result_expires": _seconds(conf.result_expires),
        "task_time_limit": conf.task_time_limit,
        "task_soft_time_limit": conf.task_soft_time_limit,
    }


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    total_seconds = getattr(value, "total_seconds", None)
    return float(total_seconds()) if total_seconds else float(value)


def find_warnings(settings: dict[str, Any]) -> list[dict[str, str]]:
    """Each setting that makes a loss possible, named, with what can be lost and when."""
    warnings = []
    early = ", ".join(settings["tasks_acking_early"])
    if early:
        warnings.append(
            {
                "name": "early_ack",
                "message": (
                    "tasks acknowledged when received, before they run (task_acks_late is "
                    f"{settings['task_acks_late']}; early: {early}): "
                    "a task running when its worker is killed (out of memory, kill -9, host lost) "
                    "is lost; set task_acks_late = True"
                ),
            }
        )
    if settings["task_acks_late"] and not settings["task_reject_on_worker_lost"]:
        warnings.append(
            {
                "name": "acked_when_worker_lost",
                "message": (
                    "task_reject_on_worker_lost is False: a task whose pool process dies is "
                    "acknowledged as failed instead of given back to the queue; set it True"
                ),
            }
        )
    if not settings["confirm_publish"]:
        warnings.append(
            {
                "name": "no_publisher_confirms",
                "message": (
                    "broker_transport_options has no confirm_publish: a task sent while a broker "
                    "fails over can be lost without an error to the sender; set "
                    "broker_transport_options = {'confirm_publish': True}"
                ),
            }
        )
    if settings["result_backend"] in ("redis", "rediss") and not settings["result_expires"]:
        warnings.append(
            {
                "name": "results_never_expire",
                "message": (
                    "result_expires is unset on a Redis result backend: results are kept forever "
                    "until Redis reaches maxmemory and evicts them, newest included; set "
                    "result_expires (seconds)"
                ),
            }
        )
    return warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", required=True, help="the Celery app, as for celery -A")
    args = parser.parse_args(argv)
    try:
        app = find_app(args.app)
        settings = read_settings(app)
    except Exception as error:  # the app's own import error, reported by the role
        print(f"cannot load {args.app}: {error}", file=sys.stderr)
        return 2
    print(json.dumps({"settings": settings, "warnings": find_warnings(settings)}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
