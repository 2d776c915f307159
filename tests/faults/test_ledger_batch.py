"""Pure logic of the fault report (no cluster needed; run by `make unit`)."""

from __future__ import annotations

import ledger_batch
import pytest
from ledger_batch import Batch, Outcome, format_table


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


@pytest.fixture(autouse=True)
def no_settle_wait(monkeypatch) -> None:
    monkeypatch.setattr(ledger_batch, "SETTLE_SECONDS", 0)


def test_settle_reports_the_row_then_refuses_a_lost_job() -> None:
    ledger = {"executions": {"a": 1, "b": 0}, "redelivered": {"a": 0, "b": 0}}
    batch = Batch(web_url="http://unused", read_ledger=lambda ids: ledger, accepted=["a", "b"])
    reported: list[Outcome] = []
    with pytest.raises(AssertionError):
        batch.settle(reported.append, "x", fault_at=0, recovery_seconds=None, note="", timeout=0)
    assert [row.lost for row in reported] == [1]


def test_settle_refuses_an_unexpected_failure_and_accepts_the_expected_ones() -> None:
    batch = Batch(
        web_url="http://unused",
        read_ledger=lambda ids: {"executions": {"a": 1}, "redelivered": {"a": 0}},
        accepted=["a"],
        failures=["POST timed out"],
    )
    with pytest.raises(AssertionError, match="POST timed out"):
        batch.settle(lambda row: None, "x", fault_at=0, recovery_seconds=None, note="", timeout=0)
    outcome = batch.settle(
        lambda row: None,
        "x",
        fault_at=0,
        recovery_seconds=None,
        note="",
        timeout=0,
        expected_failures=["POST timed out"],
    )
    assert (outcome.submitted, outcome.lost) == (1, 0)
