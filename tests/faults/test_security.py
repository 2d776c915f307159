"""Security, tried for real on the running cluster rather than read from configuration:
`guest` cannot log in, the app user cannot open another vhost or use the management API,
every service runs as an unprivileged user, and the public edge (nginx) serves HTTPS only,
keeps Flower to the admin networks and limits each address's job submissions.

(Also on every run, in tests/infra: ports closed to hosts outside the cluster, management API
and Flower refusing anonymous access, env files 0600, no secret in ps, logs, journal or
Ansible's output.)
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shlex
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from cluster_runs import app_command, front_end_plain_url, playbook, wait_for_final_state

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
        app_command(
            hv, f"{base}/current/bin/python", "-c", shlex.quote(AMQP_LOGIN), shlex.quote(who)
        )
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
        # The example app's workers and gunicorn (a project deployed beside it, app.yml, runs its
        # own as its own user).
        ("celery_workers", "{celery_app_base_dir}/current/bin/celery", "celery_app_user"),
        ("web", "{celery_app_base_dir}/current/bin/python -m gunicorn", "celery_app_user"),
        ("web", "flower", "celery_app_user"),
        ("web", "nginx: worker process", "www-data"),
    ],
)
def test_services_run_as_unprivileged_users(hosts, kit_vars, group, pattern, user) -> None:
    for name, hv in kit_vars.items():
        if group in hv["groups"]:
            found = process_owners(hosts[name], pattern.format(**hv))
            assert found == {hv.get(user, user)}, (name, pattern)


# Run on a cluster host: argv[1] METHOD, argv[2] URL, argv[3] how many requests, one after the
# other on one connection; prints one JSON line per response: [status, body]. The certificate
# is not checked: these tests are about who is let in, HTTPS is proven from the control node.
REQUESTS_FROM_HOST = """
import http.client, json, ssl, sys
from urllib.parse import urlsplit
method, url, count = sys.argv[1], urlsplit(sys.argv[2]), int(sys.argv[3])
context = ssl._create_unverified_context()
conn = http.client.HTTPSConnection(url.hostname, url.port or 443, context=context, timeout=10)
body = json.dumps({"task": "noop"}) if method == "POST" else None
for _ in range(count):
    conn.request(method, url.path, body=body, headers={"Content-Type": "application/json"})
    reply = conn.getresponse()
    print(json.dumps([reply.status, reply.read().decode(errors="replace")[:300]]))
"""


def requests_from(host, method: str, url: str, count: int = 1) -> list[tuple[int, str]]:
    out = host.run(
        f"python3 -c {shlex.quote(REQUESTS_FROM_HOST)} {method} {shlex.quote(url)} {count}"
    )
    assert out.rc == 0, out.stderr
    return [tuple(json.loads(line)) for line in out.stdout.splitlines()]


@pytest.fixture(scope="module")
def https_front_end(kit_vars, web_host_name, web_url) -> dict:
    """The first web host's variables; the edge tests need a site served over HTTPS."""
    hv = kit_vars[web_host_name]
    if not hv["nginx_tls_enabled"]:
        pytest.skip("this inventory serves the front end without HTTPS (kit_https: false)")
    return hv


def test_front_end_serves_https_verified_against_the_kits_ca(
    https_front_end, web_url, web_ca_bundle
) -> None:
    assert web_url.startswith("https://")
    reply = requests.get(f"{web_url}/ping", timeout=10, verify=web_ca_bundle or True)
    assert (reply.status_code, reply.text) == (200, "pong")
    if web_ca_bundle:  # the control: the public CAs do not vouch for the kit's certificate
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{web_url}/ping", timeout=10, verify=requests.certs.where())


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_front_end_speaks_tls_1_2_and_1_3(https_front_end, web_url, web_ca_bundle, version):
    context = ssl.create_default_context(cafile=web_ca_bundle)
    context.minimum_version = context.maximum_version = ssl.TLSVersion[version]
    url = urlsplit(web_url)
    host = url.hostname or ""
    with (
        socket.create_connection((host, url.port or 443), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        assert tls.version() == version.replace("_", ".")


def test_plain_http_redirects_to_https_but_for_the_health_check(https_front_end, web_url) -> None:
    plain = front_end_plain_url(https_front_end)
    for path in ("/", "/api/jobs", f"/{https_front_end['flower_url_prefix']}/"):
        reply = requests.get(f"{plain}{path}", timeout=10, allow_redirects=False)
        assert reply.status_code == 301, path
        assert reply.headers["Location"] == f"{web_url}{path}"
    for path in https_front_end["nginx_plain_http_paths"]:
        assert requests.get(f"{plain}{path}", timeout=10).status_code == 200, path


def test_responses_carry_the_security_headers_and_no_server_version(
    https_front_end, web_url
) -> None:
    for path in ("/", "/api/jobs/not-a-uuid", "/static/style.css"):
        reply = requests.get(f"{web_url}{path}", timeout=10)
        for name, value in https_front_end["nginx_security_headers"].items():
            assert reply.headers.get(name) == value, (path, name)
        assert reply.headers.get("Server") == "nginx", path


def test_flower_is_refused_to_cluster_hosts_outside_the_admin_networks(
    https_front_end, hosts, kit_vars, kit_secrets, web_url
) -> None:
    flower = f"{web_url}/{https_front_end['flower_url_prefix']}/"
    admin = set(https_front_end["nginx_admin_networks"])
    outsiders = sorted(
        name
        for name, hv in kit_vars.items()
        if "web" not in hv["groups"] and hv["cluster_address"] not in admin
    )
    assert outsiders, "every cluster host is in the admin networks: nobody to try from"
    assert requests_from(hosts[outsiders[0]], "GET", flower)[0][0] == 403
    # The control: from the control node (an admin address here), the password gets in.
    reply = requests.get(
        flower,
        auth=(https_front_end["flower_user"], kit_secrets["kit_flower_password"]),
        timeout=10,
    )
    assert reply.status_code == 200


def test_a_burst_of_submissions_from_one_address_gets_429_with_a_json_body(
    https_front_end, hosts, kit_vars, web_url
) -> None:
    exempt = set(https_front_end["nginx_submit_rate_exempt_networks"])
    client = next(
        name
        for name, hv in sorted(kit_vars.items())
        if "rabbitmq" in hv["groups"] and hv["cluster_address"] not in exempt
    )
    burst = int(https_front_end["nginx_submit_burst"])
    replies = requests_from(hosts[client], "POST", f"{web_url}/api/jobs", burst * 3)
    statuses = [status for status, _ in replies]
    assert set(statuses) == {202, 429}, statuses
    assert statuses.count(202) >= burst  # the burst itself is served
    body = json.loads(next(text for status, text in replies if status == 429))
    assert "too many" in body["error"]
    # Reading a job stays unlimited for that client.
    assert requests_from(hosts[client], "GET", f"{web_url}/api/jobs/not-a-uuid", 5)[-1][0] == 404


# Run on an app host as the app, with its environment: tries each Redis command of argv[1] (JSON:
# [[command, args...], ...]) with the app's own result-store URL; prints one word per command.
REDIS_AS_APP = """
import json, os, sys
import redis
client = redis.Redis.from_url(os.environ["KITAPP_RESULT_BACKEND"], socket_timeout=5)
out = []
for command in json.loads(sys.argv[1]):
    try:
        client.execute_command(*command)
        out.append("ALLOWED")
    except redis.exceptions.NoPermissionError:
        out.append("REFUSED")
print(json.dumps(out))
"""


def redis_as_app(hosts, kit_vars, name: str, commands: list[list[str]]) -> dict[str, str]:
    hv = kit_vars[name]
    base = hv["celery_app_base_dir"]
    out = hosts[name].run(
        app_command(
            hv,
            f"{base}/current/bin/python",
            "-c",
            shlex.quote(REDIS_AS_APP),
            shlex.quote(json.dumps(commands)),
        )
    )
    assert out.rc == 0, out.stderr
    return dict(zip([" ".join(c) for c in commands], json.loads(out.stdout), strict=True))


# What only an operator (Redis's default user) may do; neither app user can.
DANGEROUS = [["FLUSHALL"], ["CONFIG", "GET", "requirepass"], ["KEYS", "*"], ["ACL", "LIST"]]


def test_web_hosts_redis_user_reaches_its_keys_only(hosts, kit_vars, web_host_name) -> None:
    if not kit_vars[web_host_name]["redis_acl_users"]:
        pytest.skip("this inventory defines no Redis ACL users")
    seen = redis_as_app(
        hosts,
        kit_vars,
        web_host_name,
        [
            ["GET", "kitapp:job:probe"],  # its job records
            ["GET", "celery-task-meta-probe"],  # results: read
            ["SET", "celery-task-meta-probe", "forged"],  # ... but not write
            ["HGET", "kitapp:ledger", "probe"],  # the workers' ledger
            *DANGEROUS,
        ],
    )
    assert seen == {
        "GET kitapp:job:probe": "ALLOWED",
        "GET celery-task-meta-probe": "ALLOWED",
        "SET celery-task-meta-probe forged": "REFUSED",
        "HGET kitapp:ledger probe": "REFUSED",
        **{" ".join(c): "REFUSED" for c in DANGEROUS},
    }


def test_workers_redis_user_reaches_its_keys_only(hosts, kit_vars, worker_hosts) -> None:
    name = worker_hosts[0]
    if not kit_vars[name]["redis_acl_users"]:
        pytest.skip("this inventory defines no Redis ACL users")
    seen = redis_as_app(
        hosts,
        kit_vars,
        name,
        [
            ["HGET", "kitapp:ledger", "probe"],
            ["GET", "celery-task-meta-probe"],
            ["GET", "kitapp:job:probe"],  # the web's job records
            *DANGEROUS,
        ],
    )
    assert seen == {
        "HGET kitapp:ledger probe": "ALLOWED",
        "GET celery-task-meta-probe": "ALLOWED",
        "GET kitapp:job:probe": "REFUSED",
        **{" ".join(c): "REFUSED" for c in DANGEROUS},
    }


# Last in this module: the fixture below turns API tokens on for the web hosts (as the production
# inventory has them) until the module's end.
@pytest.fixture(scope="module")
def api_tokens(inventory, kit_vars, kit_secrets, web_host_name) -> Iterator[dict[str, str]]:
    """API tokens required on the web hosts: the vault's and a second client's (generated here,
    only its SHA-256 reaches the hosts). Afterwards the inventory's own setting is deployed."""
    other = secrets.token_urlsafe(24)
    tokens = {"site": kit_secrets["kit_api_token"], "other": other}
    settings = {
        "kit_api_tokens_required": True,
        "kit_api_extra_token_hashes": [hashlib.sha256(other.encode()).hexdigest()],
    }
    switched = not kit_vars[web_host_name]["kit_api_tokens_required"]
    # The setting is in the app's environment only: deploy.yml writes it and restarts gunicorn,
    # half the web hosts at a time, without site.yml's other roles.
    if switched:
        playbook(inventory, "deploy.yml", "--limit", "web", "-e", json.dumps(settings))
    try:
        yield tokens
    finally:
        if switched:
            playbook(inventory, "deploy.yml", "--limit", "web")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_submissions_and_the_listing_need_a_token_when_tokens_are_on(api_tokens, web_url) -> None:
    for headers in ({}, bearer("not-a-token")):
        refused = requests.post(
            f"{web_url}/api/jobs", json={"task": "noop"}, headers=headers, timeout=15
        )
        assert refused.status_code == 401, refused.text
        assert refused.headers.get("WWW-Authenticate", "").startswith("Bearer")
        listing = requests.get(f"{web_url}/api/jobs", headers=headers, timeout=15)
        assert listing.status_code == 401, listing.text
    accepted = requests.post(
        f"{web_url}/api/jobs", json={"task": "noop"}, headers=bearer(api_tokens["site"]), timeout=15
    )
    assert accepted.status_code == 202, accepted.text
    # Polling one job by its (unguessable) id needs no token.
    assert wait_for_final_state(web_url, accepted.json()["id"])["state"] == "SUCCESS"


def test_the_listing_shows_only_the_jobs_of_the_callers_token(api_tokens, web_url) -> None:
    submitted = {
        who: requests.post(
            f"{web_url}/api/jobs", json={"task": "noop"}, headers=bearer(token), timeout=15
        ).json()["id"]
        for who, token in api_tokens.items()
    }
    for who, token in api_tokens.items():
        listing = requests.get(
            f"{web_url}/api/jobs", params={"limit": 100}, headers=bearer(token), timeout=15
        )
        assert listing.status_code == 200, listing.text
        seen = {job["id"] for job in listing.json()["jobs"]}
        assert submitted[who] in seen
        assert not (set(submitted.values()) - {submitted[who]}) & seen, who
