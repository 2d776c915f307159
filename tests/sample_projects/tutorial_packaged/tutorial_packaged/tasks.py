"""Its tasks, registered as tutorial_packaged.tasks.<name>."""

import socket

from tutorial_packaged.celery import app


@app.task
def add(x: int, y: int) -> dict:
    return {"value": x + y, "hostname": socket.gethostname()}
