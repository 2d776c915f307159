"""Security, tried for real on the running cluster rather than read from configuration:
`guest` cannot log in, the app user cannot open another vhost or use the management API, and
every service runs as an unprivileged user.

(Also on every run, in tests/infra: ports closed to hosts outside the cluster, management API
and Flower refusing anonymous access, env files 0600, no secret in ps, logs, journal or
Ansible's output.)
"""

from __future__ import annotations

import shlex

import pytest

# Run on a web host, as the app user, with the app's environment; prints one word and never
# the password. argv[1]: "guest" (guest/guest) or a vhost to try with the app's own user.
AMQP_LOGIN = """
import os, sys
from urllib.parse import quote, urlsplit
import kombu
url = urlsplit(os.environ["KITAPP_BROKER_URLS"].split(";")[0])
if sys.argv[1] == "guest":
    target = f"amqp://guest:guest@{url.hostname}:{url.port}//"
else:
    target = url._replace(path="/" + quote(sys.argv[1], safe="")).geturl()
try:
    with kombu.Connection(target, connect_timeout=5) as conn:
        conn.ensure_connection(max_retries=1)
    print("ALLOWED")
except Exception as exc:
    print("REFUSED", type(exc).__name__)
"""


def amqp_login(hosts, kit_vars, web_host_name: str, who: str) -> str:
    hv = kit_vars[web_host_name]
    base = hv["celery_app_base_dir"]
    out = hosts[web_host_name].run(
        f"sudo -u {hv['celery_app_user']} {base}/bin/with-env {base}/current/bin/python "
        f"-c {shlex.quote(AMQP_LOGIN)} {shlex.quote(who)}"
    )
    assert out.rc == 0, out.stderr
    return out.stdout.strip()


def test_guest_cannot_log_in_to_the_broker(hosts, kit_vars, web_host_name) -> None:
    assert amqp_login(hosts, kit_vars, web_host_name, "guest").startswith("REFUSED")


def test_app_user_reaches_its_own_vhost_only(hosts, kit_vars, web_host_name) -> None:
    own = kit_vars[web_host_name]["kitapp_broker_vhost"]
    assert amqp_login(hosts, kit_vars, web_host_name, own) == "ALLOWED"
    for other in ["/", "kitapp-other"]:
        assert amqp_login(hosts, kit_vars, web_host_name, other).startswith("REFUSED"), other


def test_app_user_cannot_use_the_management_api(hosts, kit_vars, kit_secrets) -> None:
    broker = next(name for name, hv in kit_vars.items() if "rabbitmq" in hv["groups"])
    hv = kit_vars[broker]
    user = hv["kitapp_broker_user"]
    password = kit_secrets["kitapp_broker_password"]
    host = hosts[broker]
    curlrc = "/root/.kit-test-curlrc"
    # The credentials travel inside Ansible's module payload and a 0600 file, never in argv.
    host.ansible(
        "ansible.builtin.copy",
        {"dest": curlrc, "mode": "0600", "content": f'user = "{user}:{password}"\n'},
        check=False,
        become=True,
    )
    try:
        status = host.run(
            f"curl -s -o /dev/null -w '%{{http_code}}' -K {curlrc} "
            f"http://{hv['rabbitmq_management_ip']}:{hv['rabbitmq_management_port']}/api/overview"
        ).stdout
    finally:
        host.run(f"rm -f {curlrc}")
    assert status == "401"


def process_owners(host, pattern: str) -> set[str]:
    """Users of the processes whose command line contains pattern."""
    lines = host.run("ps -eo user:32=,args=").stdout.splitlines()
    return {line.split(None, 1)[0] for line in lines if pattern in line and "ps -eo" not in line}


@pytest.mark.parametrize(
    ("group", "pattern", "user"),
    [
        ("rabbitmq", "beam.smp", "rabbitmq"),
        ("redis", "redis-server", "redis"),
        ("celery_workers", "bin/celery", "celery_app_user"),
        ("web", "-m gunicorn", "celery_app_user"),
        ("web", "flower", "celery_app_user"),
        ("web", "nginx: worker process", "www-data"),
    ],
)
def test_services_run_as_unprivileged_users(hosts, kit_vars, group, pattern, user) -> None:
    for name, hv in kit_vars.items():
        if group in hv["groups"]:
            assert process_owners(hosts[name], pattern) == {hv.get(user, user)}, (name, pattern)
