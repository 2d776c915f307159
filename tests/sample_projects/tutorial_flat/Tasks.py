"""The tutorial's Tasks.py: three system-info tasks, registered as Tasks.<name>.

Unlike the tutorial they return what they print (so a caller can check the result), and the
sleep is read from the environment (the tutorial's 10 s by default).
"""

import os
import platform
import socket
import time

from CeleryApp import app

SLEEP_SECONDS = float(os.environ.get("TUTORIAL_SLEEP_SECONDS", "10"))


def _report(name: str, value: str) -> dict:
    print(f"{name} started")
    time.sleep(SLEEP_SECONDS)
    print(value)
    return {"value": value, "hostname": socket.gethostname()}


@app.task
def taskPrintOSName() -> dict:  # noqa: N802 (the tutorial's name)
    return _report("taskPrintOSName", os.name)


@app.task
def taskPrintSystem() -> dict:  # noqa: N802
    return _report("taskPrintSystem", platform.system())


@app.task
def taskPrintSystemRelease() -> dict:  # noqa: N802
    return _report("taskPrintSystemRelease", platform.release())
