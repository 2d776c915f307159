"""The tutorial's CeleryApp.py, as beginners write it: the broker is hard-coded to localhost.

Deployed by the kit unchanged: Celery reads CELERY_BROKER_URL and CELERY_RESULT_BACKEND from
the environment before the values given here, and the kit's environment file sets both.
"""

from celery import Celery

app = Celery(
    "CeleryApp",
    backend="rpc://",
    broker="amqp://myuser:mypassword@localhost/myvhost",
    include="Tasks",
)
