"""The kit's RedBeat scheduler module (ansible/roles/celery_beat/files/celerykit_beat.py): how it
points RedBeat at the app's Redis, and what it refuses, without a Redis."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from celery import Celery
from celery.exceptions import ImproperlyConfigured

MODULE = Path(__file__).resolve().parents[2] / "ansible/roles/celery_beat/files/celerykit_beat.py"
_spec = importlib.util.spec_from_file_location("celerykit_beat", MODULE)
assert _spec and _spec.loader
celerykit_beat = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = celerykit_beat
_spec.loader.exec_module(celerykit_beat)

BACKEND = "redis://kitapp-worker:secret@192.0.2.11:6379/0"
PREFIX = {"CELERYKIT_REDBEAT_KEY_PREFIX": "redbeat:kitapp:"}


def app_with(backend: str | None) -> Celery:
    app = Celery("project", broker="amqp://guest@192.0.2.11//", set_as_current=False)
    if backend:
        app.conf.result_backend = backend
    return app


def test_redbeat_keeps_its_schedule_in_the_apps_result_store_not_the_broker(monkeypatch) -> None:
    monkeypatch.delenv("CELERY_RESULT_BACKEND", raising=False)
    app = app_with(BACKEND)
    celerykit_beat.configure(app, PREFIX)
    assert app.conf.redbeat_redis_url == BACKEND
    assert app.conf.redbeat_key_prefix == "redbeat:kitapp:"
    assert app.conf.redbeat_redis_options == {"retry_period": -1}


def test_the_kits_result_backend_variable_wins_over_the_projects_setting(monkeypatch) -> None:
    monkeypatch.setenv("CELERY_RESULT_BACKEND", BACKEND)
    app = app_with("redis://localhost:6379/9")
    celerykit_beat.configure(app, PREFIX)
    assert app.conf.redbeat_redis_url == BACKEND


@pytest.mark.parametrize("backend", [None, "rpc://", "db+postgresql://db/results"])
def test_a_result_backend_other_than_redis_is_refused_by_name(monkeypatch, backend) -> None:
    monkeypatch.delenv("CELERY_RESULT_BACKEND", raising=False)
    with pytest.raises(ImproperlyConfigured, match="result store") as refused:
        celerykit_beat.configure(app_with(backend), PREFIX)
    assert "secret" not in str(refused.value)


def test_a_missing_key_prefix_is_refused_by_its_variable_name(monkeypatch) -> None:
    monkeypatch.delenv("CELERY_RESULT_BACKEND", raising=False)
    with pytest.raises(ImproperlyConfigured, match="CELERYKIT_REDBEAT_KEY_PREFIX"):
        celerykit_beat.configure(app_with(BACKEND), {})


def test_the_check_names_an_app_that_does_not_import(monkeypatch) -> None:
    monkeypatch.setenv("CELERY_RESULT_BACKEND", BACKEND)
    monkeypatch.setenv("CELERYKIT_REDBEAT_KEY_PREFIX", "redbeat:kitapp:")
    assert "no_such_project" in celerykit_beat.check("no_such_project.celery_app")
