"""The sample projects deployed beside the example app (tests/sample_projects), and a client
that sends their tasks by name."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent / "sample_projects"
PROJECT = SAMPLES / "tutorial_flat"
# Its deployment variables (ansible-playbook app.yml -e @DEFINITION).
DEFINITION = SAMPLES / "tutorial_flat.yml"
# The same folder as a project with its own web front end (web.py behind the site's nginx).
WEB_DEFINITION = SAMPLES / "tutorial_web.yml"
# A packaged project, deployed from its wheel.
PACKAGED = SAMPLES / "tutorial_packaged"
PACKAGED_DEFINITION = SAMPLES / "tutorial_packaged.yml"


def broker_url(worker, project_hv: dict) -> str:
    """The project's broker URL(s), as its environment file on a worker host holds them."""
    env_file = project_hv["celery_app_env_file"]
    return worker.check_output(f'. {env_file} && printf %s "$CELERY_BROKER_URL"')


def send_by_name(
    client,
    client_hv: dict,
    url: str,
    queue: str,
    calls: dict[str, list],
    propagate: bool = True,
    wait: bool = True,
) -> dict:
    """Sends each task by name (with its args) from a host that has Celery but not the project's
    code (the example app's release), and returns name -> result (rpc:// results); with
    propagate False, name -> {"state": ..., "result": repr of the result or exception}; with wait
    False, name -> task id, at once. Over AMQPS the brokers' certificates are verified against
    the kit's CA, the copy the client host's app holds."""
    ca_file = client_hv["celery_app_broker_ca_file"] if client_hv["celery_app_broker_tls"] else ""
    script = (
        "import json, ssl, sys\n"
        "from celery import Celery\n"
        f"ca_file = {ca_file!r}\n"
        "tls = {'ca_certs': ca_file, 'cert_reqs': ssl.CERT_REQUIRED} if ca_file else False\n"
        "app = Celery(broker=sys.stdin.read(), backend='rpc://', broker_use_ssl=tls)\n"
        f"calls = {calls!r}\n"
        f"results = {{n: app.send_task(n, args=a, queue={queue!r}) for n, a in calls.items()}}\n"
        + (
            "print(json.dumps({n: r.id for n, r in results.items()}))\n"
            if not wait
            else "print(json.dumps({n: r.get(timeout=90) for n, r in results.items()}))\n"
            if propagate
            else "for r in results.values(): r.get(timeout=90, propagate=False)\n"
            "print(json.dumps({n: {'state': r.state, 'result': repr(r.result)}"
            " for n, r in results.items()}))\n"
        )
    )
    python = f"{client_hv['celery_app_base_dir']}/current/bin/python"
    out = client.run(
        f"printf %s {shlex.quote(url)} | sudo -u {client_hv['celery_app_user']} "
        f"{python} -c {shlex.quote(script)}"
    )
    assert out.rc == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
