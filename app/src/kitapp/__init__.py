"""kitapp: the example Celery application of the Celery deployment kit."""

__version__ = "0.1.0"
