"""What the cluster tests share: running the kit's playbooks, and following a job to its end."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

TESTS_DIR = Path(__file__).resolve().parent
ANSIBLE_DIR = TESTS_DIR.parent / "ansible"
ANSIBLE_ENV = {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg")}
# The tests' resolution of the deployment's variables (a playbook, run from ansible/ too).
RESOLVE_VARS = TESTS_DIR / "resolve-vars.yml"


def hosts_in(kit_vars: dict, group: str) -> list[str]:
    """The inventory's hosts of `group`, sorted."""
    return sorted(name for name, hv in kit_vars.items() if group in hv["groups"])


# A beat log's line for a send of the example app's periodic heartbeat task.
BEAT_HEARTBEAT_SENT = re.compile(
    r"^\[([0-9-]+ [0-9:,]+): INFO/\S+\] Scheduler: Sending due task heartbeat ", re.M
)


def beat_heartbeat_sends(host, hv: dict) -> list[float]:
    """When the host's beat sent the heartbeat task (epoch seconds), from its log (read as root)."""
    log = f"{hv['celery_app_log_dir']}/{hv['celery_app_name']}-beat.log"
    *lines, offset = host.run(f"cat {log}; date +%z").stdout.splitlines()  # the log's zone
    return [
        datetime.strptime(f"{stamp} {offset}", "%Y-%m-%d %H:%M:%S,%f %z").timestamp()
        for stamp in BEAT_HEARTBEAT_SENT.findall("\n".join(lines))
    ]


def front_end_url(hv: dict) -> str:
    """A web host's front end as clients reach it: nginx over HTTPS when the site serves it."""
    if hv["nginx_tls_enabled"]:
        port = int(hv["nginx_tls_port"])
        return f"https://{hv['cluster_address']}" + ("" if port == 443 else f":{port}")
    return f"http://{hv['cluster_address']}:{hv['nginx_listen_port']}"


def front_end_plain_url(hv: dict) -> str:
    """The same front end over plain HTTP (redirects to HTTPS when the site serves that)."""
    return f"http://{hv['cluster_address']}:{hv['nginx_listen_port']}"


def front_end_ca_bundle(hv: dict) -> str | None:
    """The CA a client verifies the front end's certificate with: the kit's own CA when it issued
    the certificate (the site gave none), else None (the system's CAs)."""
    if hv["nginx_tls_enabled"] and not hv["nginx_tls_cert_src"]:
        return f"{hv['nginx_tls_ca_dir']}/ca.crt"
    return None


def app_command(hv: dict, *argv: str) -> str:
    """A command line a host runs as the app user, with the app's environment (with-env)."""
    return f"sudo -u {hv['celery_app_user']} {hv['celery_app_base_dir']}/bin/with-env " + " ".join(
        argv
    )


# GET a URL on a cluster host with the host's own Python (the hosts have no curl); prints the body.
HOST_GET = (
    "python3 -c 'import sys, urllib.request as u; "
    "print(u.urlopen(sys.argv[1], timeout=5).read().decode())' "
)


def redis_operator_cli(hv: dict) -> str:
    """redis-cli on the result store's host as its default (operators') user. The password is
    read there from Redis's own configuration, never put on a command line: commands run through
    sudo, which writes each command line to the host's journal."""
    return (
        "REDISCLI_AUTH=$(sed -n 's/^requirepass //p' /etc/redis/redis.conf) "
        f"redis-cli --no-auth-warning -h 127.0.0.1 -p {hv['redis_port']}"
    )


def run_playbook(inventory: str, name: str, *args: str) -> subprocess.CompletedProcess:
    """Runs ansible-playbook NAME (relative to ansible/, or absolute), whatever its outcome."""
    return subprocess.run(
        ["ansible-playbook", "-i", inventory, name, *args],
        cwd=ANSIBLE_DIR,
        env=ANSIBLE_ENV,
        capture_output=True,
        text=True,
    )


def playbook(inventory: str, name: str, *args: str) -> str:
    """Runs ansible-playbook NAME; fails the test unless it succeeds; returns its output."""
    run = run_playbook(inventory, name, *args)
    assert run.returncode == 0, f"{name} failed:\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}"
    return run.stdout


# A folder (made and removed by tests/cluster.sh for one cluster test) where resolve_vars keeps
# what it resolved, so the test sessions of one run resolve each inventory once.
RESOLVED_CACHE_ENV = "KIT_RESOLVED_VARS_CACHE"
SECRETS_ARG = "kit_secrets_file="


def resolution_inputs_digest(inventory: str, args: tuple[str, ...]) -> str:
    """A digest of everything resolve-vars.yml reads: the playbooks, roles, group_vars and
    credentials (ansible/), the inventory, the cluster's machines (vagrant/hosts.yml and which
    machines Vagrant created), the -e files and arguments, and the kit's CELERYKIT_ settings."""
    root = ANSIBLE_DIR.parent
    digest = hashlib.sha256()
    files = [RESOLVE_VARS, root / "vagrant" / "hosts.yml"]
    for folder in (ANSIBLE_DIR, Path(inventory)):
        files += sorted(p for p in folder.rglob("*") if p.is_file())
    files += sorted((root / ".vagrant" / "machines").glob("*/*/id"))
    files += [Path(a[1:]) for a in args if a.startswith("@")]
    for path in files:
        digest.update(f"{path}\0".encode() + (path.read_bytes() if path.exists() else b"-"))
    settings = sorted(
        (k, v) for k, v in os.environ.items() if k.startswith(("CELERYKIT_", "VAGRANT_"))
    )
    kept_args = [a for a in args if not a.startswith(SECRETS_ARG)]
    digest.update(json.dumps([inventory, kept_args, settings]).encode())
    return digest.hexdigest()[:32]


def resolve_vars(inventory: str, out: Path, *args: str) -> dict:
    """Per inventory host, the deployment's non-secret variables as site.yml sees them, resolved
    by tests/resolve-vars.yml into `out` (extra ARGS: e.g. -e @definition, -e kit_secrets_file=).
    Within a cluster test ($KIT_RESOLVED_VARS_CACHE), an earlier resolution of the same inputs is
    copied instead (about 40 s of CPU each). Test processes running side by side (pytest -n)
    take turns: the first resolves, the others copy its result."""
    secrets = next((Path(a[len(SECRETS_ARG) :]) for a in args if a.startswith(SECRETS_ARG)), None)
    cache_root = os.environ.get(RESOLVED_CACHE_ENV)
    if not cache_root:
        playbook(inventory, str(RESOLVE_VARS), "-e", f"kit_vars_file={out}", *args)
        return json.loads(out.read_text())
    cached = Path(cache_root) / resolution_inputs_digest(inventory, args)
    cached.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(cached / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (cached / "vars.json").exists() and (not secrets or (cached / "secrets.json").exists()):
            shutil.copyfile(cached / "vars.json", out)
            if secrets:
                shutil.copyfile(cached / "secrets.json", secrets)
                secrets.chmod(0o600)
            return json.loads(out.read_text())
        playbook(inventory, str(RESOLVE_VARS), "-e", f"kit_vars_file={out}", *args)
        if secrets:
            shutil.copyfile(secrets, cached / "secrets.json")
            (cached / "secrets.json").chmod(0o600)
        shutil.copyfile(out, cached / "vars.json")
    return json.loads(out.read_text())


def changed_per_host(output: str) -> dict[str, int]:
    """Host -> changed count, from an ansible-playbook PLAY RECAP."""
    found = re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", output, re.MULTILINE)
    return {host: int(changed) for host, changed in found}


def assert_failed_naming(run: subprocess.CompletedProcess, *words: str) -> None:
    """The playbook run failed, its output names each of `words`, and no host changed."""
    assert run.returncode != 0, run.stdout[-2000:]
    for word in words:
        assert word in run.stdout, run.stdout[-3000:]
    changed = changed_per_host(run.stdout)
    assert changed and set(changed.values()) == {0}, changed


# The package a changed release adds (the rolling-deploy fault test, the bench's code-only release).
CHANGED_RELEASE_PACKAGE = "six==1.16.0"


def changed_release_extra_vars(app_host_vars: list[dict]) -> str:
    """Extra-vars (JSON) for a release that differs from the deployed one by one more package:
    extra-vars apply to every host, so each gets the union of the app hosts' extra packages plus
    CHANGED_RELEASE_PACKAGE."""
    extras = {p for hv in app_host_vars for p in hv["celery_app_extra_packages"]}
    return json.dumps({"celery_app_extra_packages": sorted(extras | {CHANGED_RELEASE_PACKAGE})})


def release_links(app_hosts: dict, vars_per_host: dict, link: str = "current") -> dict[str, str]:
    """Host name -> the release its `current` (or `previous`) link points to."""
    return {
        name: host.file(f"{vars_per_host[name]['celery_app_base_dir']}/{link}").linked_to
        for name, host in app_hosts.items()
    }


def wait_for_final_state(web_url: str, job_id: str, timeout: float = 120) -> dict:
    """Polls GET /api/jobs/<id> until SUCCESS or FAILURE; returns the job."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = requests.get(f"{web_url}/api/jobs/{job_id}", timeout=10)
        assert reply.status_code == 200, reply.text
        job = reply.json()
        if job["state"] in ("SUCCESS", "FAILURE"):
            return job
        time.sleep(0.5)
    pytest.fail(f"job {job_id} not finished after {timeout}s")


# A Prometheus duration (prometheus_scrape_interval, kit_alert_*): units from ms to weeks, largest
# first, e.g. "40s", "1m30s", "2h".
PROMETHEUS_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w)")
PROMETHEUS_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def prometheus_seconds(duration: str) -> float:
    """Seconds of a Prometheus duration; a ValueError for anything else."""
    parts = PROMETHEUS_DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * PROMETHEUS_UNIT_SECONDS[u] for n, u in parts)


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 1.0
) -> Any:
    """Calls predicate until it returns a true value; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception as exc:  # a host that is still booting, ssh not yet back
            last_error = exc
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:g} s waiting for {what} (last error: {last_error})"
    )


class KeepGetting:
    """A client in a thread, for as long as the with-block runs: GETs the URLs in turn, one every
    `interval` s, and keeps each answer's status in order (0: no answer) and every failure (no
    answer, or a status other than `ok`)."""

    def __init__(
        self, urls: list[str], interval: float, timeout: float = 30, ok: int = 200
    ) -> None:
        self.urls, self.interval, self.timeout, self.ok = urls, interval, timeout, ok
        self.answers: list[int] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def statuses(self) -> Counter[int]:
        return Counter(self.answers)

    def _run(self) -> None:
        sent = 0
        while not self._stop.is_set():
            url = self.urls[sent % len(self.urls)]
            sent += 1
            try:
                reply = requests.get(url, timeout=self.timeout)
            except requests.RequestException as exc:
                self.answers.append(0)
                self.failures.append(f"{url}: {exc}")
            else:
                self.answers.append(reply.status_code)
                if reply.status_code != self.ok:
                    self.failures.append(f"{url}: {reply.status_code} {reply.text[:200]}")
            self._stop.wait(self.interval)

    def __enter__(self) -> KeepGetting:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
