"""The cluster test's cache of resolved variables (tests/cluster_runs.py): one resolution per
set of inputs. Its key must change with whatever the resolution reads, and must not change
with where a session asks the secrets to be written."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import cluster_runs
import pytest
from cluster_runs import resolution_inputs_digest

INVENTORY = str(Path(__file__).resolve().parents[2] / "ansible" / "inventories" / "vagrant")


def test_key_ignores_where_the_secrets_are_written() -> None:
    one = resolution_inputs_digest(INVENTORY, ("-e", "kit_secrets_file=/tmp/a/secrets.json"))
    other = resolution_inputs_digest(INVENTORY, ("-e", "kit_secrets_file=/tmp/b/secrets.json"))
    assert one == other


def test_key_changes_with_an_extra_vars_files_content(tmp_path: Path) -> None:
    definition = tmp_path / "project.yml"
    definition.write_text("celery_app_name: one\n")
    before = resolution_inputs_digest(INVENTORY, ("-e", f"@{definition}"))
    definition.write_text("celery_app_name: two\n")
    assert resolution_inputs_digest(INVENTORY, ("-e", f"@{definition}")) != before


def test_key_changes_with_the_inventory_and_the_kits_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    before = resolution_inputs_digest(INVENTORY, ())
    assert resolution_inputs_digest(str(tmp_path), ()) != before
    monkeypatch.setenv("CELERYKIT_PROCESS_MANAGER", "a-value-no-run-sets")
    assert resolution_inputs_digest(INVENTORY, ()) != before


def test_sessions_side_by_side_resolve_once_and_each_gets_the_result(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """pytest -n: the test processes start together; one resolves, the others wait and copy."""
    runs = []

    def fake_playbook(inventory: str, name: str, *args: str) -> str:
        out = Path(next(a for a in args if a.startswith("kit_vars_file="))[len("kit_vars_file=") :])
        runs.append(out)
        time.sleep(0.3)
        out.write_text(json.dumps({"broker1": {"groups": ["rabbitmq"]}}))
        return ""

    monkeypatch.setattr(cluster_runs, "playbook", fake_playbook)
    monkeypatch.setenv(cluster_runs.RESOLVED_CACHE_ENV, str(tmp_path / "cache"))
    results: dict[int, dict] = {}

    def session(n: int) -> None:
        results[n] = cluster_runs.resolve_vars(INVENTORY, tmp_path / f"vars-{n}.json")

    sessions = [threading.Thread(target=session, args=(n,)) for n in range(3)]
    for thread in sessions:
        thread.start()
    for thread in sessions:
        thread.join()
    assert len(runs) == 1
    assert all(r == {"broker1": {"groups": ["rabbitmq"]}} for r in results.values())
    assert len(results) == 3
