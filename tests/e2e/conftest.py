"""The second sample project (tests/sample_projects), deployed once for the modules using it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from app_processes import AppProcesses
from cluster_runs import playbook, resolve_vars
from sample_project import DEFINITION, PACKAGED_DEFINITION, WEB_DEFINITION


@pytest.fixture(scope="session")
def second_project() -> dict:
    """The second project's variables, as its definition file sets them."""
    return yaml.safe_load(DEFINITION.read_text())


def resolve_project_vars(inventory: str, definition: Path, folder: Path) -> dict:
    """Per inventory host, the variables as the roles resolve them for the project `definition`
    (deployed with app.yml -e @definition)."""
    return resolve_vars(inventory, folder / "vars.json", "-e", f"@{definition}")


@pytest.fixture(scope="session")
def second_project_vars(inventory: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return resolve_project_vars(inventory, DEFINITION, tmp_path_factory.mktemp("second-project"))


@pytest.fixture(scope="session")
def second_project_deployed(inventory: str, hosts, kit_vars, worker_hosts) -> dict:
    """Deploys the project (twice: the second run must change nothing); returns both runs' output
    and the example app's process ids on the worker hosts from before the deploy."""
    before = {name: AppProcesses(hosts[name], kit_vars[name]).pids() for name in worker_hosts}
    first = playbook(inventory, "app.yml", "-e", f"@{DEFINITION}")
    again = playbook(inventory, "app.yml", "-e", f"@{DEFINITION}")
    return {"example_pids_before": before, "first_run": first, "second_run": again}


@pytest.fixture(scope="session")
def packaged_vars(inventory: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return resolve_project_vars(
        inventory, PACKAGED_DEFINITION, tmp_path_factory.mktemp("packaged-project")
    )


@pytest.fixture(scope="session")
def web_project_vars(inventory: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return resolve_project_vars(inventory, WEB_DEFINITION, tmp_path_factory.mktemp("web-project"))


@pytest.fixture(scope="session")
def web_project_deployed(inventory: str) -> dict:
    """Deploys the project with its web front end, twice (the second run must change nothing)."""
    first = playbook(inventory, "app.yml", "-e", f"@{WEB_DEFINITION}")
    again = playbook(inventory, "app.yml", "-e", f"@{WEB_DEFINITION}")
    return {"first_run": first, "second_run": again}
