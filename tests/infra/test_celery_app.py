"""The app: installed as a release with a `current` link, its secrets in an env file the app reads
and only root writes."""

from __future__ import annotations

import shlex

from cluster_runs import app_command

testinfra_hosts = ["ansible://celery_workers", "ansible://web"]


def test_env_file_is_readable_by_the_app_and_writable_by_root_only(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    path, user = hv["celery_app_env_file"], hv["celery_app_user"]
    with host.sudo():
        env = host.file(path)
        assert (env.user, env.group, env.mode) == ("root", user, 0o640)
        assert host.run(f"sudo -u {user} test -r {path}").rc == 0
        assert host.run(f"sudo -u {user} test -w {path}").rc != 0
        assert host.run(f"sudo -u nobody test -r {path}").rc != 0


def test_current_link_points_at_a_completely_installed_release(host, kit_vars) -> None:
    base = kit_vars[host.backend.get_hostname()]["celery_app_base_dir"]
    current = host.file(f"{base}/current")
    assert current.is_symlink
    assert current.linked_to.startswith(f"{base}/releases/")
    assert host.file(f"{current.linked_to}/.installed").exists


def test_app_code_is_not_writable_by_the_app_user(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    release = host.file(f"{hv['celery_app_base_dir']}/current").linked_to
    assert host.file(release).user == "root"
    assert host.run(f"sudo -u {hv['celery_app_user']} test -w {release}").rc != 0


def test_app_user_cannot_log_in(host, kit_vars) -> None:
    user = host.user(kit_vars[host.backend.get_hostname()]["celery_app_user"])
    assert user.shell in ("/usr/sbin/nologin", "/bin/false")


# Run as the app user with the app's environment: one process opens a connection to each broker
# of the failover list in turn, as Celery does on failover (and the worker, for its delayed
# delivery, at start), with the app's own ssl options. Prints one line per broker.
REACH_EVERY_BROKER = """
from kitapp.celery_app import app
for url in app.conf.broker_url.split(";"):
    with app.connection_for_write(url=url) as conn:
        try:
            conn.ensure_connection(max_retries=1)
            print("OK", conn.hostname)
        except Exception as exc:
            print("FAILED", conn.hostname, exc)
"""


def test_one_app_process_reaches_every_broker_of_its_failover_list(host, kit_vars) -> None:
    """With TLS, each broker's certificate is verified, not only the first one's (kombu writes the
    first host into shared ssl options if they leave server_hostname to the URL)."""
    hv = kit_vars[host.backend.get_hostname()]
    python = f"{hv['celery_app_base_dir']}/current/bin/python"
    out = host.check_output(
        "cd /tmp && " + app_command(hv, python, "-c", shlex.quote(REACH_EVERY_BROKER))
    )
    expected = [f"OK {kit_vars[name]['cluster_address']}" for name in hv["celery_app_broker_hosts"]]
    assert out.splitlines() == expected
