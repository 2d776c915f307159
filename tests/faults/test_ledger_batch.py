"""Pure logic of the fault report (no cluster needed; run by `make unit`)."""

from __future__ import annotations

from ledger_batch import Batch, format_table


def batch_with(accepted: list[str]) -> Batch:
    return Batch(web_url="http://unused", read_ledger=lambda ids: {}, accepted=accepted)


def test_outcome_counts_lost_duplicated_and_redelivered_jobs() -> None:
    ledger = {
        "executions": {"a": 1, "b": 0, "c": 2, "d": 1},
        "redelivered": {"a": 0, "b": 0, "c": 1, "d": 1},
    }
    outcome = batch_with(["a", "b", "c", "d"]).outcome(
        "x", ledger, fault_at=10.0, drained_at=25.04, recovery_seconds=3.21
    )
    assert (outcome.submitted, outcome.completed, outcome.lost) == (4, 3, 1)
    assert (outcome.duplicated, outcome.redelivered) == (1, 2)
    assert (outcome.recovery_seconds, outcome.drain_seconds) == (3.2, 15.0)


def test_table_has_one_aligned_row_per_scenario_and_the_notes() -> None:
    ledger = {"executions": {"a": 1}, "redelivered": {"a": 0}}
    rows = [
        batch_with(["a"]).outcome(name, ledger, fault_at=0, drained_at=1, recovery_seconds=None)
        for name in ("short", "a much longer scenario")
    ]
    rows[0].note = "why"
    lines = format_table(rows).splitlines()
    assert lines[0].split()[:2] == ["scenario", "submitted"]
    assert lines[2].startswith("short ") and lines[3].startswith("a much longer scenario ")
    assert lines[2].index("1") == lines[3].index("1")
    assert lines[-1] == "- short: why"
