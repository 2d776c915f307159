"""The deploy's reliability report: which Celery settings it names as a possible loss (pure logic,
on real Celery app objects; the cluster test tests/e2e/test_second_project.py reads a deployed
release with it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from celery import Celery

READER = (
    Path(__file__).resolve().parents[2] / "ansible/roles/celery_app/files/celery-reliability.py"
)
_spec = importlib.util.spec_from_file_location("celery_reliability", READER)
assert _spec and _spec.loader
reader = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reader)

SAFE = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "broker_transport_options": {"confirm_publish": True},
    "result_backend": "redis://:secret@redis.internal:6379/0",
    "result_expires": 3600,
}


def _warnings(config: dict[str, Any], **task_options: Any) -> tuple[dict, list[str]]:
    app = Celery("project", set_as_current=False)
    app.conf.update(config)

    @app.task(name="project.work", shared=False, **task_options)
    def work() -> None:
        """A project task."""

    settings = reader.read_settings(app)
    return settings, [w["name"] for w in reader.find_warnings(settings)]


def test_a_project_acking_late_with_confirms_and_expiring_results_gets_no_warning() -> None:
    settings, names = _warnings(SAFE)
    assert names == []
    assert "project.work" not in settings["tasks_acking_early"]


def test_the_tutorials_defaults_are_named_early_ack_and_no_publisher_confirms() -> None:
    settings, names = _warnings({"result_backend": "rpc://"})
    assert names == ["early_ack", "no_publisher_confirms"]
    assert "project.work" in settings["tasks_acking_early"]


def test_one_task_acking_early_in_a_late_acking_app_is_named() -> None:
    settings, names = _warnings(SAFE, acks_late=False)
    assert names == ["early_ack"]
    assert "project.work" in settings["tasks_acking_early"]


def test_late_ack_without_reject_on_worker_lost_is_named() -> None:
    _, names = _warnings({**SAFE, "task_reject_on_worker_lost": False})
    assert names == ["acked_when_worker_lost"]


def test_redis_results_without_expiry_are_named_and_rpc_results_are_not() -> None:
    assert _warnings({**SAFE, "result_expires": None})[1] == ["results_never_expire"]
    rpc = {**SAFE, "result_backend": "rpc://", "result_expires": None}
    assert _warnings(rpc)[1] == []


def test_the_report_holds_the_backends_scheme_and_never_its_password() -> None:
    settings, _ = _warnings(SAFE)
    assert settings["result_backend"] == "redis"
    assert "secret" not in repr(settings)
