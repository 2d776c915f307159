"""Where a project's code comes from, and what a user sees when it is wrong.

A bad module name or an unreachable source fails the play with a message naming it, and
changes nothing: the release in use, the running workers and their configuration stay.
"""

from __future__ import annotations

import subprocess
from datetime import datetime

from app_processes import AppProcesses
from cluster_runs import (
    assert_failed_naming,
    changed_per_host,
    playbook,
    release_links,
    run_playbook,
)
from sample_project import DEFINITION, PROJECT


def release_in_use(hosts, worker_hosts, second_project_vars) -> dict[str, str]:
    return release_links({name: hosts[name] for name in worker_hosts}, second_project_vars)


def example_pids(hosts, kit_vars, worker_hosts) -> dict[str, dict[str, int]]:
    return {name: AppProcesses(hosts[name], kit_vars[name]).pids() for name in worker_hosts}


def worker_started_and_ready(host, project_hv: dict) -> tuple[datetime, datetime]:
    """When the host's (first) worker of the project started, and when it last logged that it was
    ready (the containers share one clock)."""
    processes = AppProcesses(host, project_hv)
    worker = processes.workers()[0]
    started = host.check_output(f"ps -o lstart= -p {processes.pid(worker)}")
    log = next(i["log"] for i in processes.present if i["role"] == "celery_worker")
    ready = host.check_output(f"grep ' ready\\.$' {log} | tail -n 1")
    return (
        datetime.strptime(started.strip(), "%a %b %d %H:%M:%S %Y"),
        datetime.strptime(ready[1 : ready.index(",")], "%Y-%m-%d %H:%M:%S"),
    )


def deploy(inventory: str, *overrides: str) -> subprocess.CompletedProcess:
    extra = [arg for override in overrides for arg in ("-e", override)]
    return run_playbook(inventory, "app.yml", "-e", f"@{DEFINITION}", *extra)


def test_module_missing_from_a_flat_project_fails_before_any_host_changes(
    second_project_deployed, inventory, hosts, kit_vars, worker_hosts, second_project_vars
) -> None:
    before = release_in_use(hosts, worker_hosts, second_project_vars)
    run = deploy(inventory, "celery_app_module=CeleryAp")
    assert_failed_naming(run, "celery_app_module: CeleryAp is not in")
    assert release_in_use(hosts, worker_hosts, second_project_vars) == before


def test_app_that_does_not_import_on_the_host_never_goes_live(
    second_project_deployed, inventory, hosts, kit_vars, worker_hosts, second_project_vars
) -> None:
    """The module is there (Tasks.py) but names no Celery app: found only by importing it in
    the release on the host, before `current` switches."""
    before = release_in_use(hosts, worker_hosts, second_project_vars)
    pids = example_pids(hosts, kit_vars, worker_hosts)
    run = deploy(inventory, "celery_app_module=Tasks:no_such_app")
    assert_failed_naming(run, "celery_app_module: Tasks:no_such_app does not import")
    assert release_in_use(hosts, worker_hosts, second_project_vars) == before
    assert example_pids(hosts, kit_vars, worker_hosts) == pids


def test_unreachable_git_source_fails_naming_it(
    second_project_deployed, inventory, tmp_path
) -> None:
    missing = f"file://{tmp_path}/no-such-repository.git"
    run = deploy(inventory, f"celery_app_source={missing}")
    assert_failed_naming(run, f"celery_app_source: cannot fetch {missing}")


def test_git_source_deploys_the_same_release_as_the_folder_it_holds(
    second_project_deployed, inventory, hosts, worker_hosts, second_project_vars, tmp_path
) -> None:
    repository = tmp_path / "tutorial.git"
    work = tmp_path / "work"
    subprocess.run(["cp", "-r", str(PROJECT), str(work)], check=True)
    git = ["git", "-C", str(work), "-c", "user.name=kit", "-c", "user.email=kit@localhost"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "tutorial"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(repository)], check=True)

    before = release_in_use(hosts, worker_hosts, second_project_vars)
    from_git = (
        "-e",
        f"@{DEFINITION}",
        "-e",
        f"celery_app_source=file://{repository}",
        "-e",
        "celery_app_source_version=main",
    )
    output = playbook(inventory, "app.yml", *from_git)
    assert "Check out the requested version of the git source" in output
    assert release_in_use(hosts, worker_hosts, second_project_vars) == before
    # The first run's only change is the control node's new checkout; a second run has none.
    again = playbook(inventory, "app.yml", *from_git)
    assert set(changed_per_host(again).values()) == {0}, changed_per_host(again)


def test_changed_flat_project_makes_a_new_release_and_rollback_returns_to_the_old(
    second_project_deployed, inventory, hosts, worker_hosts, second_project_vars, tmp_path
) -> None:
    changed = tmp_path / "tutorial_flat"
    subprocess.run(["cp", "-r", str(PROJECT), str(changed)], check=True)
    with (changed / "Tasks.py").open("a") as tasks:
        tasks.write("\n# a new revision of the project\n")
    before = release_in_use(hosts, worker_hosts, second_project_vars)

    playbook(inventory, "app.yml", "-e", f"@{DEFINITION}", "-e", f"celery_app_source={changed}")
    deployed = release_in_use(hosts, worker_hosts, second_project_vars)
    assert all(deployed[name] != before[name] for name in worker_hosts), (before, deployed)
    # The worker hosts switched a batch at a time (half of them): the last host's new worker
    # started only once the first host's was ready (to the second: `ps` gives no finer start).
    times = {
        name: worker_started_and_ready(hosts[name], second_project_vars[name])
        for name in (worker_hosts[0], worker_hosts[-1])
    }
    assert times[worker_hosts[-1]][0] >= times[worker_hosts[0]][1], times
    for name in worker_hosts:
        base = second_project_vars[name]["celery_app_base_dir"]
        assert hosts[name].file(f"{base}/previous").linked_to == before[name]

    limit = ",".join(worker_hosts)  # a worker-only project: no web hosts to roll back
    playbook(inventory, "rollback.yml", "-e", f"@{DEFINITION}", "--limit", limit)
    assert release_in_use(hosts, worker_hosts, second_project_vars) == before

    # Deploying the release in use again (its artifact is in it) changes nothing, although the
    # other revision was deployed in between.
    again = changed_per_host(playbook(inventory, "app.yml", "-e", f"@{DEFINITION}"))
    assert again and set(again.values()) == {0}, again
