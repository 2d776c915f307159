"""The app: installed as a release with a `current` link, its secrets in a 0600 env file."""

from __future__ import annotations

testinfra_hosts = ["ansible://celery_workers", "ansible://web"]


def test_env_file_is_private_to_the_app_user(host, kit_vars) -> None:
    hv = kit_vars[host.backend.get_hostname()]
    with host.sudo():
        env = host.file(hv["celery_app_env_file"])
        assert env.user == hv["celery_app_user"]
        assert env.mode == 0o600


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
