"""``kitapp-tutorial``: the tutorial's Task_run.py, with a deadline instead of a blind sleep.

Submits the three tutorial tasks with ``.delay()``, prints whether each is ready (False
three times, as in the tutorial), polls every second until all are done or --timeout
passes, then prints each result. Exits 0 only when all three succeeded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from kitapp.config import ConfigError

TUTORIAL_TASKS = ("taskPrintOSName", "taskPrintSystem", "taskPrintSystemRelease")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="kitapp-tutorial", description="Run the tutorial's three tasks on the workers."
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for all results"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = _parse_args(argv)
    say = (lambda *a: print(*a, file=sys.stderr)) if options.json else print
    try:
        from kitapp import tasks
    except ConfigError as exc:
        print(f"kitapp configuration error: {exc}", file=sys.stderr)
        return 2

    try:
        results = {name: getattr(tasks, name).delay() for name in TUTORIAL_TASKS}
    except Exception as exc:  # broker unreachable after the publish retries
        print(f"could not submit the tasks: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for name, result in results.items():
        say(f"{name} {result.id} ready: {result.ready()}")

    deadline = time.monotonic() + options.timeout
    while True:
        done = sum(1 for r in results.values() if r.ready())
        say(f"{done}/{len(results)} tasks done")
        if done == len(results):
            break
        if time.monotonic() >= deadline:
            print(f"timeout: not all tasks finished in {options.timeout:g} s", file=sys.stderr)
            return 1
        time.sleep(1)

    output: dict[str, Any] = {}
    failed = False
    for name, result in results.items():
        if result.successful():
            output[name] = result.get(timeout=5)
            say(f"{name}: {output[name]}")
        else:
            failed = True
            exc = result.result
            output[name] = {"error": f"{type(exc).__name__}: {exc}", "state": result.state}
            say(f"{name} failed: {output[name]['error']}")
    if options.json:
        print(json.dumps(output, sort_keys=True))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
