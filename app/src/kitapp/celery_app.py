"""The Celery application (``celery -A kitapp.celery_app worker``).

Importing this module loads the settings from the environment (it raises ConfigError if
they are missing) but does not connect to the broker or the result store: Celery connects
lazily, on the first publish or when a worker starts.
"""

from __future__ import annotations

from celery import Celery

from kitapp.celery_config import celery_config
from kitapp.config import Settings, load_settings


def create_celery_app(settings: Settings) -> Celery:
    celery = Celery("CeleryApp", include=["kitapp.tasks"])
    celery.config_from_object(celery_config(settings))
    celery.kitapp_settings = settings  # type: ignore[attr-defined]
    return celery


settings: Settings = load_settings()
app: Celery = create_celery_app(settings)
