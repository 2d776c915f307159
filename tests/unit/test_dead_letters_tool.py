"""The dead-letters tool's reading of the broker's death records (pure logic; the cluster test
tests/faults/test_dead_letters.py runs it against the brokers)."""

from __future__ import annotations

import datetime
import importlib.util
from pathlib import Path

TOOL = Path(__file__).resolve().parents[2] / "ansible/roles/celery_app/files/celery-dead-letters.py"
_spec = importlib.util.spec_from_file_location("celery_dead_letters", TOOL)
assert _spec and _spec.loader
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)

DIED = datetime.datetime(2026, 12, 3, 8, 0, tzinfo=datetime.UTC)
# As py-amqp hands over a Celery task message that hit a quorum queue's delivery limit twice.
HEADERS = {
    "id": "3f2a",
    "task": "kitapp.poison",
    "x-death": [
        {
            "count": 2,
            "reason": b"delivery_limit",
            "queue": "kitapp",
            "time": DIED,
            "exchange": "kitapp",
            "routing-keys": ["kitapp"],
        }
    ],
    "x-first-death-reason": "delivery_limit",
    "x-first-death-queue": "kitapp",
    "x-first-death-exchange": "kitapp",
    "x-delivery-count": 21,
}


def test_a_dead_letter_is_described_by_task_reason_count_queue_and_time() -> None:
    assert tool.describe(HEADERS, {"correlation_id": "3f2a"}) == {
        "id": "3f2a",
        "task": "kitapp.poison",
        "reason": "delivery_limit",
        "count": 2,
        "queue": "kitapp",
        "time": DIED.isoformat(),
    }


def test_a_message_without_celery_headers_is_named_by_its_correlation_id() -> None:
    row = tool.describe({"x-death": HEADERS["x-death"]}, {"correlation_id": "c1"})
    assert (row["id"], row["task"]) == ("c1", "")


def test_a_replayed_copy_keeps_the_tasks_headers_and_drops_the_brokers() -> None:
    assert tool.replay_headers(HEADERS) == {"id": "3f2a", "task": "kitapp.poison"}


def test_replay_takes_the_chosen_ids_or_everything() -> None:
    row = tool.describe(HEADERS, {})
    assert tool.chosen(row, {"3f2a"}, everything=False)
    assert not tool.chosen(row, {"other"}, everything=False)
    assert tool.chosen(row, set(), everything=True)
