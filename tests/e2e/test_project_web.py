"""A project's own web front end, deployed by app.yml beside the site's app.

The tutorial's flat project with web.py (tests/sample_projects/tutorial_web.yml): its gunicorn on
every web host, served by that host's nginx at /tutorialweb/, its static files by nginx. A
request there runs the project's task on a worker and answers with its result; the site's app
keeps its own paths; a new release rolls over the web hosts while a client keeps asking, and no
request fails.
"""

from __future__ import annotations

import subprocess
import time

import requests
from cluster_runs import (
    KeepGetting,
    assert_failed_naming,
    changed_per_host,
    front_end_url,
    playbook,
    run_playbook,
)
from sample_project import PROJECT, WEB_DEFINITION

LOAD_INTERVAL = 0.2


def project_url(kit_vars: dict, web_project_vars: dict, name: str) -> str:
    return front_end_url(kit_vars[name]) + web_project_vars[name]["nginx_app_path"]


def test_second_deploy_of_the_web_project_changes_nothing(web_project_deployed) -> None:
    changed = changed_per_host(web_project_deployed["second_run"])
    assert changed and set(changed.values()) == {0}, changed


def test_project_page_runs_its_task_on_a_worker_behind_every_web_hosts_nginx(
    web_project_deployed, web_url, kit_vars, web_project_vars, web_hosts, worker_hosts, hosts
) -> None:
    worker_names = {hosts[name].check_output("hostname") for name in worker_hosts}
    for name in web_hosts:
        reply = requests.get(f"{project_url(kit_vars, web_project_vars, name)}/system", timeout=60)
        assert reply.status_code == 200, (name, reply.status_code, reply.text[:300])
        body = reply.json()
        assert body["result"]["value"] == "Linux", body
        assert body["result"]["hostname"] in worker_names, body  # computed on a worker
        assert body["web_host"] == hosts[name].check_output("hostname"), body  # its own gunicorn
        assert body["script_name"] == web_project_vars[name]["nginx_app_path"], body


def test_project_static_file_is_served_by_nginx_from_its_release(
    web_project_deployed, web_url, kit_vars, web_project_vars, web_hosts
) -> None:
    expected = (PROJECT / "static" / "hello.txt").read_text()
    for name in web_hosts:
        reply = requests.get(
            f"{project_url(kit_vars, web_project_vars, name)}/static/hello.txt", timeout=10
        )
        assert reply.status_code == 200, (name, reply.status_code)
        assert reply.text == expected
        assert "max-age=" in reply.headers.get("Cache-Control", ""), reply.headers  # nginx's


def test_project_and_site_keep_their_own_paths(
    web_project_deployed, web_url, kit_vars, web_project_vars, web_host_name
) -> None:
    unknown = requests.get(
        f"{project_url(kit_vars, web_project_vars, web_host_name)}/no-such-page", timeout=10
    )
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "no page /no-such-page"}  # the project's own 404
    site = requests.get(f"{web_url}/healthz", timeout=10)
    assert site.status_code == 200, site.text[:200]
    assert site.json()["broker"] == "ok", site.text[:200]  # the site's app, not the project


def test_path_of_the_site_itself_is_refused_before_any_host_changes(
    web_project_deployed, inventory
) -> None:
    run = run_playbook(
        inventory, "app.yml", "-e", f"@{WEB_DEFINITION}", "-e", "nginx_app_path=/flower"
    )
    assert_failed_naming(run, "nginx_app_path: /flower is not a path a project can take")
    assert "Deploy the project's workers" not in run.stdout  # stopped in the first play


def test_rolling_deploy_of_the_project_under_load_fails_no_request(
    web_project_deployed,
    web_url,
    inventory,
    kit_vars,
    web_project_vars,
    web_hosts,
    tmp_path,
) -> None:
    changed = tmp_path / "tutorial_flat"
    subprocess.run(["cp", "-r", str(PROJECT), str(changed)], check=True)
    web_py = changed / "web.py"
    web_py.write_text(web_py.read_text().replace('REVISION = "1"', 'REVISION = "2"'))
    urls = [project_url(kit_vars, web_project_vars, name) for name in web_hosts]
    with KeepGetting([f"{url}/system" for url in urls], LOAD_INTERVAL) as client:
        source = f"celery_app_source={changed}"
        playbook(inventory, "app.yml", "-e", f"@{WEB_DEFINITION}", "-e", source)
        time.sleep(2)
    assert client.failures == [], (client.statuses, client.failures[:10])
    assert client.statuses[200] > 10, client.statuses
    for url in urls:
        assert requests.get(f"{url}/healthz", timeout=10).json()["revision"] == "2", url
