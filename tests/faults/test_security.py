"""Security, tried for real on the running cluster rather than read from configuration:
`guest` cannot log in, the app user cannot open another vhost or use the management API, and
every service runs as an unprivileged user.

(Also on every run, in tests/infra: ports closed to hosts outside the cluster, management API
and Flower refusing anonymous access, env files 0600, no secret in ps, logs, journal or
Ansible's output.)
"""

from __future__ import annotations

import json
import shlex

import pytest
from cluster_runs import playbook

# Run on a web host, as the app user, with the app's environment; prints one word and never
# the password. argv[1]: "guest" (guest/guest) or a vhost to try with the app's own user.
AMQP_LOGIN = """
import os, sys
from urllib.parse import quote, urlsplit
import ssl
import kombu
url = urlsplit(os.environ["KITAPP_BROKER_URLS"].split(";")[0])
ca = os.environ.get("KITAPP_BROKER_CA_FILE")
tls = {"ca_certs": ca, "cert_reqs": ssl.CERT_REQUIRED, "server_hostname": None} if ca else False
if sys.argv[1] == "guest":
    target = f"{url.scheme}://guest:guest@{url.hostname}:{url.port}//"
else:
    target = url._replace(path="/" + quote(sys.argv[1], safe="")).geturl()
try:
    with kombu.Connection(target, connect_timeout=5, ssl=tls) as conn:
        conn.ensure_connection(max_retries=1)
    print("ALLOWED")
except Exception as exc:
    print("REFUSED", type(exc).__name__)
"""


# Run on a broker: GET argv[2] with basic auth "user:password" read from the file argv[1];
# prints the HTTP status.
HTTP_STATUS_WITH_AUTH = """
import base64, sys, urllib.error, urllib.request
token = base64.b64encode(open(sys.argv[1], "rb").read().strip()).decode()
request = urllib.request.Request(sys.argv[2], headers={"Authorization": "Basic " + token})
try:
    print(urllib.request.urlopen(request, timeout=10).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
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


def test_app_user_cannot_use_the_management_api(
    hosts, kit_vars, kit_secrets, inventory, tmp_path
) -> None:
    broker = next(name for name, hv in kit_vars.items() if "rabbitmq" in hv["groups"])
    hv = kit_vars[broker]
    credentials = "/root/.kit-test-credentials-"
    app_user, admin_user = hv["kitapp_broker_user"], hv["kit_rabbitmq_admin_user"]
    # The credentials reach the broker inside Ansible's module payload (from a 0600 vars file)
    # and a 0600 file there: never in any command line, on either side.
    secret_vars = tmp_path / "vars.json"
    secret_vars.touch(mode=0o600)
    secret_vars.write_text(
        json.dumps(
            {
                "curl_users": {
                    "app": f"{app_user}:{kit_secrets['kitapp_broker_password']}",
                    # The control: the same request with the admin's credentials gets in.
                    "admin": f"{admin_user}:{kit_secrets['kit_rabbitmq_admin_password']}",
                }
            }
        )
    )
    put_credentials = tmp_path / "put-credentials.yml"
    put_credentials.write_text(
        json.dumps(
            [
                {
                    "hosts": broker,
                    "gather_facts": False,
                    "become": True,
                    "tasks": [
                        {
                            "ansible.builtin.copy": {
                                "dest": credentials + "{{ item.key }}",
                                "mode": "0600",
                                "content": "{{ item.value }}",
                            },
                            "loop": "{{ curl_users | dict2items }}",
                            "no_log": True,
                        }
                    ],
                }
            ]
        )
    )
    playbook(inventory, str(put_credentials), "-e", f"@{secret_vars}")
    host = hosts[broker]
    url = f"http://{hv['rabbitmq_management_ip']}:{hv['rabbitmq_management_port']}/api/overview"
    try:
        status = {
            who: host.run(
                f"python3 -c {shlex.quote(HTTP_STATUS_WITH_AUTH)} {credentials}{who} {url}"
            ).stdout.strip()
            for who in ("app", "admin")
        }
    finally:
        host.run(f"rm -f {credentials}app {credentials}admin")
    assert status == {"app": "401", "admin": "200"}


def process_owners(host, pattern: str) -> set[str]:
    """Users of the processes whose command line contains pattern."""
    lines = host.run("ps -eo user:32=,args=").stdout.splitlines()
    return {line.split(None, 1)[0] for line in lines if pattern in line and "ps -eo" not in line}


@pytest.mark.parametrize(
    ("group", "pattern", "user"),
    [
        ("rabbitmq", "beam.smp", "rabbitmq"),
        ("redis", "redis-server", "redis"),
        # The example app's workers (a second project on the same hosts has its own user).
        ("celery_workers", "{celery_app_base_dir}/current/bin/celery", "celery_app_user"),
        ("web", "-m gunicorn", "celery_app_user"),
        ("web", "flower", "celery_app_user"),
        ("web", "nginx: worker process", "www-data"),
    ],
)
def test_services_run_as_unprivileged_users(hosts, kit_vars, group, pattern, user) -> None:
    for name, hv in kit_vars.items():
        if group in hv["groups"]:
            found = process_owners(hosts[name], pattern.format(**hv))
            assert found == {hv.get(user, user)}, (name, pattern)
