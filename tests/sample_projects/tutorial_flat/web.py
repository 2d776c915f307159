"""A small web front end for the tutorial's tasks (WSGI, standard library only): each request to
/system runs Tasks.taskPrintSystem on a worker and answers with its result.

Served by gunicorn when the project is deployed with a web front end (tutorial_web.yml); the
worker-only deployment (tutorial_flat.yml) does not use it. Results come back over rpc://, to
the gunicorn process that sent the task (one thread per process: gunicorn_threads 1).
"""

import json
import os

import Tasks

# Changes when the release does: the rolling deploy test tells the old release from the new.
REVISION = "1"


def _reply(start_response, status: str, body: dict) -> list[bytes]:
    data = json.dumps(body).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    start_response(status, headers)
    return [data]


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/healthz":
        return _reply(start_response, "200 OK", {"status": "ok", "revision": REVISION})
    if path == "/system":
        result = Tasks.taskPrintSystem.delay().get(timeout=30)
        return _reply(
            start_response,
            "200 OK",
            {
                "result": result,
                "revision": REVISION,
                "script_name": environ.get("SCRIPT_NAME", ""),
                "web_host": os.uname().nodename,
            },
        )
    return _reply(start_response, "404 Not Found", {"error": f"no page {path}"})
