"""A record of every job submitted through the web API.

Celery reports an unknown task id as PENDING, so the web API records each id it submits;
an id without a record is unknown (404). With a Redis result backend the records live in
Redis next to the results (visible to every web process, same expiry as results); with
the rpc:// backend they live in the web process's memory.

Each record names its owner: who may list it (``recent(limit, owner)``). With API tokens the
owner is derived from the caller's token (see web.py); with the API open it is "". Each owner
has its own capped list of recent ids (Redis: ``kitapp:jobs:recent`` for "", the list the
code before owners wrote, and ``kitapp:jobs:recent:<owner>`` otherwise), so a listing reads
only that owner's ids. Records written before owners existed have no owner field: they are
read as owner "".
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Protocol

import redis

JOB_KEY_PREFIX = "kitapp:job:"
RECENT_KEY = "kitapp:jobs:recent"
RECENT_MAX = 200  # ids kept per owner


@dataclass(frozen=True)
class JobRecord:
    id: str
    task: str
    submitted_at: float
    owner: str = ""  # who may list the job; "" while the API is open


class JobStore(Protocol):
    def record(self, job: JobRecord) -> None: ...
    def forget(self, job_id: str, owner: str = "") -> None: ...
    def get(self, job_id: str) -> JobRecord | None: ...
    def recent(self, limit: int, owner: str = "") -> list[JobRecord]: ...
    def ping(self) -> None: ...


def recent_key(owner: str) -> str:
    """The Redis list of an owner's recent job ids, newest first."""
    return f"{RECENT_KEY}:{owner}" if owner else RECENT_KEY


class RedisJobStore:
    def __init__(self, url: str, expires: int, client: redis.Redis | None = None) -> None:
        self._expires = expires
        self._client = client or redis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=10
        )

    def record(self, job: JobRecord) -> None:
        key = recent_key(job.owner)
        pipe = self._client.pipeline(transaction=True)
        pipe.set(JOB_KEY_PREFIX + job.id, json.dumps(asdict(job)), ex=self._expires)
        pipe.lpush(key, job.id)
        pipe.ltrim(key, 0, RECENT_MAX - 1)
        pipe.expire(key, self._expires)
        pipe.execute()

    def forget(self, job_id: str, owner: str = "") -> None:
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(JOB_KEY_PREFIX + job_id)
        pipe.lrem(recent_key(owner), 0, job_id)
        pipe.execute()

    def get(self, job_id: str) -> JobRecord | None:
        raw = self._client.get(JOB_KEY_PREFIX + job_id)
        return _decode(raw)

    def recent(self, limit: int, owner: str = "") -> list[JobRecord]:
        """The owner's newest jobs, newest first: reads only the owner's list and records."""
        key = recent_key(owner)
        ids = [i.decode() for i in self._client.lrange(key, 0, max(limit, 1) - 1)]
        if not ids:
            return []
        raws = self._client.mget([JOB_KEY_PREFIX + i for i in ids])
        jobs = (_decode(raw) for raw in raws)
        # The owner check guards against a list and a record that disagree.
        return [job for job in jobs if job is not None and job.owner == owner]

    def ping(self) -> None:
        self._client.ping()


def _decode(raw: bytes | None) -> JobRecord | None:
    if raw is None:
        return None
    data = json.loads(raw)
    return JobRecord(
        id=data["id"],
        task=data["task"],
        submitted_at=float(data["submitted_at"]),
        owner=str(data.get("owner") or ""),  # records written before owners: ""
    )


class MemoryJobStore:
    """For the rpc:// backend: per process, bounded, expiring like the results would."""

    def __init__(self, expires: int, max_jobs: int = 10000) -> None:
        self._expires = expires
        self._max = max_jobs
        self._jobs: OrderedDict[str, JobRecord] = OrderedDict()  # oldest first
        self._by_owner: dict[str, OrderedDict[str, JobRecord]] = {}  # the same, per owner
        self._lock = threading.Lock()

    def _drop(self, job: JobRecord) -> None:
        owned = self._by_owner.get(job.owner)
        if owned is not None:
            owned.pop(job.id, None)
            if not owned:
                del self._by_owner[job.owner]

    def _prune(self) -> None:
        cutoff = time.time() - self._expires
        while self._jobs:
            oldest = next(iter(self._jobs.values()))
            if len(self._jobs) <= self._max and oldest.submitted_at >= cutoff:
                break
            self._jobs.popitem(last=False)
            self._drop(oldest)

    def record(self, job: JobRecord) -> None:
        with self._lock:
            previous = self._jobs.pop(job.id, None)
            if previous is not None:
                self._drop(previous)
            self._jobs[job.id] = job
            self._by_owner.setdefault(job.owner, OrderedDict())[job.id] = job
            self._prune()

    def forget(self, job_id: str, owner: str = "") -> None:
        with self._lock:
            job = self._jobs.pop(job_id, None)
            if job is not None:
                self._drop(job)

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            self._prune()
            return self._jobs.get(job_id)

    def recent(self, limit: int, owner: str = "") -> list[JobRecord]:
        """The owner's newest jobs, newest first (reads only the owner's jobs)."""
        with self._lock:
            self._prune()
            owned = self._by_owner.get(owner)
            if not owned:
                return []
            return list(itertools.islice(reversed(owned.values()), max(limit, 0)))

    def ping(self) -> None:
        return None
