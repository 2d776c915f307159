"""A third shape: a packaged project (pyproject.toml, its app at tutorial_packaged.celery:app),
deployed from a wheel file, then from its sdist, by the same roles, beside the example app and
the flat project."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from cluster_runs import changed_per_host, playbook
from sample_project import PACKAGED, PACKAGED_DEFINITION, broker_url, send_by_name


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(PACKAGED)],
        check=True,
    )
    (built,) = out.glob("tutorial_packaged-*.whl")
    return str(built)


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The project's sdist, made by its own build backend (`python -m build`), from a copy of
    the source so the build leaves nothing in the repository."""
    work = tmp_path_factory.mktemp("sdist")
    source = shutil.copytree(PACKAGED, work / "source")
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(work), str(source)],
        check=True,
        capture_output=True,
    )
    (built,) = work.glob("tutorial_packaged-*.tar.gz")
    return str(built)


def deploy(inventory: str, source: str) -> str:
    """ansible-playbook app.yml for the packaged project from source; its output."""
    return playbook(
        inventory, "app.yml", "-e", f"@{PACKAGED_DEFINITION}", "-e", f"celery_app_source={source}"
    )


@pytest.fixture(scope="module")
def deployed_from_wheel(inventory: str, wheel: str) -> tuple[str, str]:
    return deploy(inventory, wheel), deploy(inventory, wheel)


def assert_installed_on_every_worker(hosts, worker_hosts: list[str], packaged_vars: dict) -> None:
    for name in worker_hosts:
        base = packaged_vars[name]["celery_app_base_dir"]
        installed = hosts[name].file(f"{base}/current/.installed").content_string.strip()
        assert installed.startswith("tutorial_packaged-1.0-"), installed


def add_on_a_worker(
    hosts, kit_vars, worker_hosts: list[str], web_host_name: str, packaged_vars: dict, *args: int
) -> int:
    """Sends tutorial_packaged.tasks.add(*args) by name from a web host; checks a worker ran it
    and returns its value."""
    url = broker_url(hosts[worker_hosts[0]], packaged_vars[worker_hosts[0]])
    queue = packaged_vars[worker_hosts[0]]["celery_worker_groups"][0]["queues"][0]
    calls = {"tutorial_packaged.tasks.add": list(args)}
    results = send_by_name(hosts[web_host_name], kit_vars[web_host_name], url, queue, calls)
    assert results["tutorial_packaged.tasks.add"]["hostname"] in worker_hosts
    return results["tutorial_packaged.tasks.add"]["value"]


def test_wheel_deploy_installs_the_wheel_and_a_second_run_changes_nothing(
    deployed_from_wheel, hosts, worker_hosts, packaged_vars
) -> None:
    _, again = deployed_from_wheel
    assert set(changed_per_host(again).values()) == {0}, changed_per_host(again)
    assert_installed_on_every_worker(hosts, worker_hosts, packaged_vars)


def test_packaged_project_task_sent_by_name_runs_on_its_workers(
    deployed_from_wheel, hosts, kit_vars, worker_hosts, web_host_name, packaged_vars
) -> None:
    assert add_on_a_worker(hosts, kit_vars, worker_hosts, web_host_name, packaged_vars, 2, 3) == 5


def current_release(hosts, worker_hosts: list[str], packaged_vars: dict) -> dict[str, str]:
    """Worker host -> the release folder `current` points at (<version>-<checksum>)."""
    return {
        name: hosts[name].file(f"{packaged_vars[name]['celery_app_base_dir']}/current").linked_to
        for name in worker_hosts
    }


def test_sdist_deploy_makes_a_new_release_runs_its_tasks_and_a_second_run_changes_nothing(
    deployed_from_wheel,
    inventory,
    wheel,
    sdist,
    hosts,
    kit_vars,
    worker_hosts,
    web_host_name,
    packaged_vars,
) -> None:
    from_wheel = current_release(hosts, worker_hosts, packaged_vars)
    first, again = deploy(inventory, sdist), deploy(inventory, sdist)
    assert all(changed_per_host(first)[name] > 0 for name in worker_hosts), changed_per_host(first)
    assert set(changed_per_host(again).values()) == {0}, changed_per_host(again)
    assert_installed_on_every_worker(hosts, worker_hosts, packaged_vars)
    from_sdist = current_release(hosts, worker_hosts, packaged_vars)
    for name in worker_hosts:
        assert from_sdist[name] != from_wheel[name]  # the sdist's own build, not the wheel's
    assert add_on_a_worker(hosts, kit_vars, worker_hosts, web_host_name, packaged_vars, 4, 5) == 9

    # The wheel again: its file name is the one the sdist's build left on the control node, and
    # it is this wheel that is deployed, not that leftover.
    deploy(inventory, wheel)
    assert current_release(hosts, worker_hosts, packaged_vars) == from_wheel
