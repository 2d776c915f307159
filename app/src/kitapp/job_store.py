"""A record of every job submitted through the web API.

Celery reports an unknown task id as PENDING, so the web API records each id it submits;
an id without a record is unknown (404). With a Redis result backend the records live in
Redis next to the results (visible to every web process, same expiry as results); with
the rpc:// backend they live in the web process's memory.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Protocol

import redis

JOB_KEY_PREFIX = "kitapp:job:"
RECENT_KEY = "kitapp:jobs:recent"
RECENT_MAX = 200


@dataclass(frozen=True)
class JobRecord:
    id: str
    task: str
    submitted_at: float


class JobStore(Protocol):
    def record(self, job: JobRecord) -> None: ...
    def forget(self, job_id: str) -> None: ...
    def get(self, job_id: str) -> JobRecord | None: ...
    def recent(self, limit: int) -> list[JobRecord]: ...
    def ping(self) -> None: ...


class RedisJobStore:
    def __init__(self, url: str, expires: int) -> None:
        self._expires = expires
        self._client = redis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=10
        )

    def record(self, job: JobRecord) -> None:
        pipe = self._client.pipeline(transaction=True)
        pipe.set(JOB_KEY_PREFIX + job.id, json.dumps(asdict(job)), ex=self._expires)
        pipe.lpush(RECENT_KEY, job.id)
        pipe.ltrim(RECENT_KEY, 0, RECENT_MAX - 1)
        pipe.expire(RECENT_KEY, self._expires)
        pipe.execute()

    def forget(self, job_id: str) -> None:
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(JOB_KEY_PREFIX + job_id)
        pipe.lrem(RECENT_KEY, 0, job_id)
        pipe.execute()

    def get(self, job_id: str) -> JobRecord | None:
        raw = self._client.get(JOB_KEY_PREFIX + job_id)
        return _decode(raw)

    def recent(self, limit: int) -> list[JobRecord]:
        ids = [i.decode() for i in self._client.lrange(RECENT_KEY, 0, max(limit, 1) - 1)]
        if not ids:
            return []
        raws = self._client.mget([JOB_KEY_PREFIX + i for i in ids])
        return [job for job in (_decode(raw) for raw in raws) if job is not None]

    def ping(self) -> None:
        self._client.ping()


def _decode(raw: bytes | None) -> JobRecord | None:
    if raw is None:
        return None
    data = json.loads(raw)
    return JobRecord(id=data["id"], task=data["task"], submitted_at=float(data["submitted_at"]))


class MemoryJobStore:
    """For the rpc:// backend: per process, bounded, expiring like the results would."""

    def __init__(self, expires: int, max_jobs: int = 10000) -> None:
        self._expires = expires
        self._max = max_jobs
        self._jobs: OrderedDict[str, JobRecord] = OrderedDict()
        self._lock = threading.Lock()

    def _prune(self) -> None:
        cutoff = time.time() - self._expires
        while self._jobs:
            oldest = next(iter(self._jobs.values()))
            if len(self._jobs) <= self._max and oldest.submitted_at >= cutoff:
                break
            self._jobs.popitem(last=False)

    def record(self, job: JobRecord) -> None:
        with self._lock:
            self._jobs[job.id] = job
            self._prune()

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            self._prune()
            return self._jobs.get(job_id)

    def recent(self, limit: int) -> list[JobRecord]:
        with self._lock:
            self._prune()
            return list(reversed(self._jobs.values()))[:limit]

    def ping(self) -> None:
        return None
