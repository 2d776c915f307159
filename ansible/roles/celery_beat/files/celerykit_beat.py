"""celery beat's scheduler for a kit deployment: RedBeat, set up from the app's environment.

The kit runs beat on every host of the celery_beat group. With this scheduler the schedule (when
each periodic task last ran) and a lock live in the app's Redis result store: the beat that holds
the lock sends, the others wait for it. RedBeat renews the lock at each tick (at most
`--max-interval` seconds apart) and it expires after 5 times that, so when the active beat's host
dies a standby takes over and sends each task from its last recorded run: none twice.

Any project can use it unchanged: the Redis URL is the project's result backend (the kit's
CELERY_RESULT_BACKEND), the key prefix comes from CELERYKIT_REDBEAT_KEY_PREFIX (the program's
environment). The project needs the celery-redbeat package in its release.

`python -m celerykit_beat --app=MODULE` checks all that before a release goes live: the app
loads, its result backend is Redis, and the app's Redis user may read RedBeat's keys.
"""

from __future__ import annotations

import argparse
import os
import sys

from celery import Celery
from celery.app.utils import find_app
from celery.exceptions import ImproperlyConfigured
from redbeat import RedBeatScheduler

KEY_PREFIX_VARIABLE = "CELERYKIT_REDBEAT_KEY_PREFIX"
# Redis calls retry (backing off up to 30 s) for as long as Redis is away, rather than the
# process exiting and its process manager giving up after a few quick restarts.
RETRY_FOREVER = -1


def configure(app: Celery, environ: os._Environ | dict[str, str]) -> None:
    """Points RedBeat at the app's Redis result store, under the kit's key prefix."""
    backend = str(app.conf.result_backend or "")
    if not backend.startswith(("redis://", "rediss://")):
        raise ImproperlyConfigured(
            "celery_beat_scheduler 'redbeat' keeps the schedule in the app's Redis result store,"
            f" but the result backend is {backend.split(':', 1)[0] or 'not set'}"
        )
    prefix = environ.get(KEY_PREFIX_VARIABLE, "")
    if not prefix:
        raise ImproperlyConfigured(f"{KEY_PREFIX_VARIABLE} is not set")
    app.conf.redbeat_redis_url = backend
    app.conf.redbeat_key_prefix = prefix
    app.conf.redbeat_redis_options = {"retry_period": RETRY_FOREVER}


class Scheduler(RedBeatScheduler):
    """RedBeat with the kit's configuration (above), whatever the project's own says."""

    def __init__(self, app: Celery, *args, **kwargs) -> None:
        configure(app, os.environ)
        super().__init__(app, *args, **kwargs)


def check(app_module: str) -> str:
    """What is wrong with running the app's beat with this scheduler, or "" when nothing is."""
    import redis

    try:
        app = find_app(app_module)
        configure(app, os.environ)
    except (ImportError, AttributeError, ImproperlyConfigured) as error:
        return str(error)
    client = redis.Redis.from_url(app.conf.redbeat_redis_url, socket_timeout=10)
    try:
        client.exists(app.conf.redbeat_key_prefix + ":lock")
    except redis.RedisError as error:
        return f"the app's Redis user cannot read {app.conf.redbeat_key_prefix}*: {error}"
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m celerykit_beat", description=check.__doc__)
    parser.add_argument("--app", required=True, help="the Celery app (celery -A)")
    problem = check(parser.parse_args(argv).app)
    if problem:
        print(f"celery beat with RedBeat: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
