"""The app: installed as a release with a `current` link, its secrets in an env file the app reads
and only root writes."""

from __future__ import annotations

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
