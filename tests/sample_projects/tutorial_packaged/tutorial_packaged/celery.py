"""The Celery app. No broker here: Celery reads CELERY_BROKER_URL and CELERY_RESULT_BACKEND
from the environment the kit writes."""

from celery import Celery

app = Celery("tutorial_packaged", include=["tutorial_packaged.tasks"])
