"""The web API's job records: owners, the per-owner recent lists, and records written before
owners existed. RedisJobStore runs against a small in-memory stand-in for the Redis client."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from kitapp.job_store import (
    JOB_KEY_PREFIX,
    RECENT_KEY,
    RECENT_MAX,
    JobRecord,
    MemoryJobStore,
    RedisJobStore,
    recent_key,
)

OWNER_A = "a" * 16
OWNER_B = "b" * 16


class FakeRedis:
    """The commands RedisJobStore uses, on dicts; counts what each read touches."""

    def __init__(self) -> None:
        self.strings: dict[str, bytes] = {}
        self.lists: dict[str, list[bytes]] = {}
        self.expiry: dict[str, int] = {}
        self.mget_keys: list[list[str]] = []
        self.lrange_keys: list[str] = []

    # writes (pipeline() returns self; execute() is a no-op: commands apply at once)
    def pipeline(self, transaction: bool = True) -> FakeRedis:
        return self

    def execute(self) -> list[Any]:
        return []

    def set(self, key: str, value: str, ex: int | None = None) -> None:
        self.strings[key] = value.encode()
        if ex is not None:
            self.expiry[key] = ex

    def delete(self, key: str) -> None:
        self.strings.pop(key, None)
        self.lists.pop(key, None)

    def lpush(self, key: str, value: str) -> None:
        self.lists.setdefault(key, []).insert(0, value.encode())

    def ltrim(self, key: str, start: int, end: int) -> None:
        self.lists[key] = self.lists.get(key, [])[start : end + 1]

    def lrem(self, key: str, count: int, value: str) -> None:
        self.lists[key] = [v for v in self.lists.get(key, []) if v != value.encode()]

    def expire(self, key: str, seconds: int) -> None:
        self.expiry[key] = seconds

    # reads
    def get(self, key: str) -> bytes | None:
        return self.strings.get(key)

    def mget(self, keys: list[str]) -> list[bytes | None]:
        self.mget_keys.append(list(keys))
        return [self.strings.get(k) for k in keys]

    def lrange(self, key: str, start: int, end: int) -> list[bytes]:
        self.lrange_keys.append(key)
        return self.lists.get(key, [])[start : end + 1]

    def ping(self) -> bool:
        return True


def job(n: int, owner: str = "") -> JobRecord:
    return JobRecord(id=f"job-{n}", task="noop", submitted_at=time.time() + n, owner=owner)


@pytest.fixture
def fake() -> FakeRedis:
    return FakeRedis()


@pytest.fixture
def redis_store(fake: FakeRedis) -> RedisJobStore:
    return RedisJobStore("redis://unused:6379/0", 3600, client=fake)  # type: ignore[arg-type]


def test_open_api_jobs_keep_the_old_recent_list_key() -> None:
    assert recent_key("") == RECENT_KEY == "kitapp:jobs:recent"
    assert recent_key(OWNER_A) == f"kitapp:jobs:recent:{OWNER_A}"


def test_redis_store_records_the_owner_and_lists_only_that_owners_jobs(
    redis_store: RedisJobStore, fake: FakeRedis
) -> None:
    for n, owner in enumerate([OWNER_A, OWNER_B, OWNER_A, "", OWNER_B]):
        redis_store.record(job(n, owner))
    assert [j.id for j in redis_store.recent(10, OWNER_A)] == ["job-2", "job-0"]
    assert [j.id for j in redis_store.recent(10, OWNER_B)] == ["job-4", "job-1"]
    assert [j.id for j in redis_store.recent(10, "")] == ["job-3"]
    stored = json.loads(fake.strings[JOB_KEY_PREFIX + "job-1"])
    assert stored["owner"] == OWNER_B
    assert redis_store.get("job-1") == JobRecord(
        id="job-1", task="noop", submitted_at=stored["submitted_at"], owner=OWNER_B
    )
    assert fake.expiry[recent_key(OWNER_A)] == 3600


def test_redis_store_listing_reads_only_the_owners_list_and_records(
    redis_store: RedisJobStore, fake: FakeRedis
) -> None:
    for n in range(50):
        redis_store.record(job(n, OWNER_B))
    redis_store.record(job(100, OWNER_A))
    fake.mget_keys.clear()
    fake.lrange_keys.clear()
    assert [j.id for j in redis_store.recent(20, OWNER_A)] == ["job-100"]
    assert fake.lrange_keys == [recent_key(OWNER_A)]
    assert fake.mget_keys == [[JOB_KEY_PREFIX + "job-100"]]  # no scan of other owners' jobs


def test_redis_store_caps_each_owners_list(redis_store: RedisJobStore, fake: FakeRedis) -> None:
    for n in range(RECENT_MAX + 5):
        redis_store.record(job(n, OWNER_A))
    redis_store.record(job(1000, OWNER_B))
    assert len(fake.lists[recent_key(OWNER_A)]) == RECENT_MAX
    assert len(fake.lists[recent_key(OWNER_B)]) == 1


def test_redis_store_reads_records_written_before_owners_as_owner_empty(
    redis_store: RedisJobStore, fake: FakeRedis
) -> None:
    # What the code before owners wrote: no "owner" field, id in the one recent list.
    old = {"id": "old-job", "task": "sleep", "submitted_at": 1700000000.5}
    fake.strings[JOB_KEY_PREFIX + "old-job"] = json.dumps(old).encode()
    fake.lists[RECENT_KEY] = [b"old-job"]
    record = redis_store.get("old-job")
    assert record == JobRecord(id="old-job", task="sleep", submitted_at=1700000000.5, owner="")
    redis_store.record(job(1))
    assert [j.id for j in redis_store.recent(10)] == ["job-1", "old-job"]
    assert redis_store.recent(10, OWNER_A) == []


def test_redis_store_listing_drops_a_record_of_another_owner(
    redis_store: RedisJobStore, fake: FakeRedis
) -> None:
    redis_store.record(job(1, OWNER_B))
    fake.lists[recent_key(OWNER_A)] = [b"job-1"]  # a list that disagrees with the record
    assert redis_store.recent(10, OWNER_A) == []


def test_redis_store_forget_removes_the_id_from_the_owners_list(
    redis_store: RedisJobStore, fake: FakeRedis
) -> None:
    redis_store.record(job(1, OWNER_A))
    redis_store.record(job(2, OWNER_A))
    redis_store.forget("job-2", OWNER_A)
    assert redis_store.get("job-2") is None
    assert fake.lists[recent_key(OWNER_A)] == [b"job-1"]


def test_memory_store_lists_only_the_owners_jobs_newest_first() -> None:
    store = MemoryJobStore(expires=3600)
    for n, owner in enumerate([OWNER_A, OWNER_B, OWNER_A, "", OWNER_A]):
        store.record(job(n, owner))
    assert [j.id for j in store.recent(10, OWNER_A)] == ["job-4", "job-2", "job-0"]
    assert [j.id for j in store.recent(2, OWNER_A)] == ["job-4", "job-2"]
    assert [j.id for j in store.recent(10, OWNER_B)] == ["job-1"]
    assert [j.id for j in store.recent(10)] == ["job-3"]
    assert store.recent(10, "c" * 16) == []


def test_memory_store_forget_and_prune_keep_the_owner_index_in_step() -> None:
    store = MemoryJobStore(expires=3600, max_jobs=3)
    for n in range(5):
        store.record(job(n, OWNER_A if n % 2 else OWNER_B))
    # Only the newest 3 remain: job-2 (B), job-3 (A), job-4 (B).
    assert [j.id for j in store.recent(10, OWNER_A)] == ["job-3"]
    assert [j.id for j in store.recent(10, OWNER_B)] == ["job-4", "job-2"]
    store.forget("job-3", OWNER_A)
    assert store.recent(10, OWNER_A) == []
    assert store.get("job-3") is None


def test_memory_store_drops_expired_jobs_from_every_owners_listing() -> None:
    store = MemoryJobStore(expires=60)
    store.record(JobRecord(id="old", task="noop", submitted_at=time.time() - 120, owner=OWNER_A))
    store.record(JobRecord(id="new", task="noop", submitted_at=time.time(), owner=OWNER_A))
    assert [j.id for j in store.recent(10, OWNER_A)] == ["new"]
