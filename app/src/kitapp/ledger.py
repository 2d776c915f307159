"""The ledger: how many times each `ledger` job ran to its end.

The fault tests submit `ledger` jobs, inject a fault, and read the ledger: an id with count 0
was lost, an id with count 2 or more ran more than once (at-least-once delivery allows that).
The counters live in the result store (Redis) under one hash that expires like the results.
Writes retry for about a minute, so a result-store restart delays a count and never drops it.

Each execution also says whether RabbitMQ delivered its message more than once (the broker's
`redelivered` flag): that shows a fault really hit a job in flight.

The `poison` fault-test job kills the process running it until its id is marked cured here
(a bug that a release then fixes): the test can cure it once it is in the dead-letter queue.

``kitapp-ledger``: read job ids (one per line) on stdin, print as JSON
{"executions": {id: count}, "redelivered": {id: executions of a redelivered message}};
``kitapp-ledger --cure``: mark those ids cured instead.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

LEDGER_KEY = "kitapp:ledger"
REDELIVERED_SUFFIX = ":redelivered"
CURED_SUFFIX = ":cured"
# Exponential backoff capped at 2 s, 35 attempts: a write keeps trying for about a minute.
WRITE_RETRIES = 35
WRITE_BACKOFF_CAP_SECONDS = 2.0


class Ledger:
    def __init__(self, url: str, expires: int) -> None:
        self._expires = expires
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=5,
            socket_connect_timeout=2,
            retry=Retry(ExponentialBackoff(cap=WRITE_BACKOFF_CAP_SECONDS), WRITE_RETRIES),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )

    def record(self, job_id: str, redelivered: bool = False) -> int:
        """Count one complete execution of job_id; returns its count so far."""
        pipe = self._client.pipeline(transaction=True)
        pipe.hincrby(LEDGER_KEY, job_id, 1)
        if redelivered:
            pipe.hincrby(LEDGER_KEY, job_id + REDELIVERED_SUFFIX, 1)
        pipe.expire(LEDGER_KEY, self._expires)
        return int(pipe.execute()[0])

    def counts(self, job_ids: Iterable[str], suffix: str = "") -> dict[str, int]:
        ids = list(job_ids)
        if not ids:
            return {}
        values = self._client.hmget(LEDGER_KEY, [job_id + suffix for job_id in ids])
        return {job_id: int(value or 0) for job_id, value in zip(ids, values, strict=True)}

    def cure(self, job_ids: Iterable[str]) -> None:
        """Marks the jobs cured: a `poison` job with a cured id runs to its end."""
        ids = list(job_ids)
        if ids:
            self._client.hset(LEDGER_KEY, mapping={job_id + CURED_SUFFIX: 1 for job_id in ids})
            self._client.expire(LEDGER_KEY, self._expires)

    def is_cured(self, job_id: str) -> bool:
        return bool(self._client.hget(LEDGER_KEY, job_id + CURED_SUFFIX))

    def report(self, job_ids: Iterable[str]) -> dict[str, dict[str, int]]:
        ids = list(job_ids)
        return {
            "executions": self.counts(ids),
            "redelivered": self.counts(ids, REDELIVERED_SUFFIX),
        }


def main(argv: list[str] | None = None) -> int:
    from kitapp.check_config import settings_or_none

    settings = settings_or_none()
    if settings is None:
        return 2
    if not settings.result_backend_is_redis:
        print("the ledger needs a Redis result backend", file=sys.stderr)
        return 2
    argv = sys.argv[1:] if argv is None else argv
    ids = [line.strip() for line in sys.stdin if line.strip()]
    ledger = Ledger(settings.result_backend, settings.result_expires)
    if argv == ["--cure"]:
        ledger.cure(ids)
        print(json.dumps({"cured": ids}))
        return 0
    if argv:
        print("usage: kitapp-ledger [--cure] < ids", file=sys.stderr)
        return 2
    print(json.dumps(ledger.report(ids)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
