"""A packaged Celery project: `celery -A tutorial_packaged.celery:app`."""
