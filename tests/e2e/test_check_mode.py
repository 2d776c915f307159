"""`ansible-playbook site.yml --check` on the deployed cluster: a dry run that succeeds and
finds nothing to change (run before the other end-to-end modules change anything)."""

from __future__ import annotations

from cluster_runs import changed_per_host, playbook


def test_check_mode_run_of_site_yml_succeeds_and_reports_no_changes(inventory, kit_vars) -> None:
    output = playbook(inventory, "site.yml", "--check")
    changed = changed_per_host(output)
    assert sorted(changed) == sorted(kit_vars), changed
    assert set(changed.values()) == {0}, changed
