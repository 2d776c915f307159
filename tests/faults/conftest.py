"""Fault-scenario fixtures: ledger batches and the report (host handles: tests/conftest.py).

Each scenario appends an Outcome; at the end the table is printed and written, with the raw
numbers, to tests/results/faults.json.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest
from cluster_runs import app_command
from ledger_batch import Batch, Outcome, format_table, write_json
from monitoring import Alerts

RESULTS = Path(__file__).resolve().parents[1] / "results"
OUTCOMES = pytest.StashKey[list[Outcome]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[OUTCOMES] = []


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    outcomes = config.stash.get(OUTCOMES, [])
    if not outcomes:
        return
    RESULTS.mkdir(exist_ok=True)
    write_json(str(RESULTS / "faults.json"), outcomes)
    terminalreporter.section("fault scenarios (also in tests/results/faults.json)")
    terminalreporter.write_line(format_table(outcomes))


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[Outcome], None]:
    return request.config.stash[OUTCOMES].append


@pytest.fixture(scope="session")
def read_ledger(
    hosts: dict, kit_vars: dict, worker_hosts: list[str]
) -> Callable[[list[str]], dict]:
    """Reads ledger counts with kitapp-ledger on a worker host, as the app user (the web hosts'
    Redis user may not read the ledger)."""
    reader = worker_hosts[0]
    hv = kit_vars[reader]
    command = app_command(hv, f"{hv['celery_app_base_dir']}/current/bin/kitapp-ledger")

    def read(ids: list[str]) -> dict[str, int]:
        if not ids:
            return {"executions": {}, "redelivered": {}}
        out = hosts[reader].run(
            f"printf '%s\\n' {' '.join(shlex.quote(i) for i in ids)} | {command}"
        )
        assert out.rc == 0, out.stderr
        return json.loads(out.stdout)

    return read


@pytest.fixture
def new_batch(web_url: str, read_ledger) -> Callable[..., Batch]:
    def make(seconds: float = 1.0) -> Batch:
        return Batch(web_url=web_url, read_ledger=read_ledger, seconds=seconds)

    return make


@pytest.fixture(scope="session")
def alerts(hosts: dict, kit_vars: dict) -> Alerts:
    """Alertmanager on the inventory's monitoring host (the fault tests need one)."""
    (name,) = [n for n, v in kit_vars.items() if "monitoring" in v["groups"]]
    return Alerts(hosts[name], kit_vars[name])
