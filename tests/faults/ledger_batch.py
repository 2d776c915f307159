"""Batches of `ledger` jobs whose executions can be counted, and what became of them.

A `ledger` job works for a few seconds, then adds one to its id's counter in the result store
(kitapp.ledger). After a fault, an accepted id (HTTP 202) with count 0 was lost; a count of 2 or
more means the job ran more than once (at-least-once delivery allows it; the scenario says why).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import requests

SUBMIT_RETRY_SECONDS = 90.0
DRAIN_POLL_SECONDS = 3.0
# After every accepted job has run once, wait this long and count again: a redelivered copy
# that runs late shows up as a duplicate instead of going unnoticed.
SETTLE_SECONDS = 8.0


@dataclass
class Outcome:
    """One row of the fault report."""

    scenario: str
    submitted: int  # accepted with HTTP 202
    completed: int  # accepted and counted at least once in the ledger
    lost: int  # accepted and never counted
    duplicated: int  # counted more than once
    redelivered: int  # ran from a message RabbitMQ had delivered before (the fault hit it)
    recovery_seconds: float | None  # fault injected -> the faulted part serves again
    drain_seconds: float  # fault injected -> every accepted job counted
    refused: int = 0  # answers 503 while a part was down (the client retried them)
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Batch:
    """Submits `ledger` jobs over HTTP and counts their executions through `read_ledger`."""

    web_url: str
    read_ledger: Callable[[list[str]], dict[str, dict[str, int]]]
    seconds: float = 1.0
    accepted: list[str] = field(default_factory=list)
    refused: int = 0
    failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def submit_one(self, retry_for: float = SUBMIT_RETRY_SECONDS) -> str | None:
        """POSTs one job; retries 503s and connection errors (a client's duty) for retry_for s."""
        deadline = time.monotonic() + retry_for
        while True:
            try:
                reply = requests.post(
                    f"{self.web_url}/api/jobs",
                    json={"task": "ledger", "args": [self.seconds]},
                    timeout=15,
                )
                status, text = reply.status_code, reply.text
            except requests.RequestException as exc:
                status, text = 0, str(exc)
            if status == 202:
                job_id = reply.json()["id"]
                with self._lock:
                    self.accepted.append(job_id)
                return job_id
            with self._lock:
                if status == 503:
                    self.refused += 1
                else:
                    self.failures.append(f"{status}: {text[:200]}")
            if status not in (0, 502, 503) or time.monotonic() > deadline:
                return None
            time.sleep(0.5)

    def submit(self, count: int, interval: float = 0.0) -> None:
        for _ in range(count):
            self.submit_one()
            if interval:
                time.sleep(interval)

    def submit_in_background(self, count: int, interval: float) -> threading.Thread:
        thread = threading.Thread(target=self.submit, args=(count, interval), daemon=True)
        thread.start()
        return thread

    def ledger(self) -> dict[str, dict[str, int]]:
        """{"executions": {id: n}, "redelivered": {id: n}} for every accepted job."""
        with self._lock:
            ids = list(self.accepted)
        return self.read_ledger(ids)

    def drain(self, timeout: float) -> tuple[dict[str, dict[str, int]], float]:
        """Waits until every accepted job ran at least once (or timeout); returns the ledger
        after the settle time, and the time.monotonic() at which all had run."""
        deadline = time.monotonic() + timeout
        while True:
            ledger = self.ledger()
            if all(ledger["executions"].values()) or time.monotonic() > deadline:
                break
            time.sleep(DRAIN_POLL_SECONDS)
        drained_at = time.monotonic()
        time.sleep(SETTLE_SECONDS)
        return self.ledger(), drained_at

    def drain_to_outcome(
        self,
        scenario: str,
        *,
        fault_at: float,
        recovery_seconds: float | None,
        note: str,
        timeout: float,
    ) -> tuple[Outcome, dict[str, dict[str, int]]]:
        """drain(), then the outcome of the scenario; also returns the ledger (for messages)."""
        ledger, drained_at = self.drain(timeout)
        outcome = self.outcome(
            scenario,
            ledger,
            fault_at=fault_at,
            drained_at=drained_at,
            recovery_seconds=recovery_seconds,
            note=note,
        )
        return outcome, ledger

    def settle(
        self,
        report: Callable[[Outcome], None],
        scenario: str,
        *,
        fault_at: float,
        recovery_seconds: float | None,
        note: str,
        timeout: float,
        expected_failures: list[str] | None = None,
    ) -> Outcome:
        """A scenario's ending: drain, report its row (printed even when a check below fails),
        then the guarantees every scenario holds: no submission failed but those expected, and
        no accepted job was lost."""
        outcome, ledger = self.drain_to_outcome(
            scenario,
            fault_at=fault_at,
            recovery_seconds=recovery_seconds,
            note=note,
            timeout=timeout,
        )
        report(outcome)
        assert self.failures == (expected_failures or []), self.failures
        assert outcome.lost == 0, ledger
        return outcome

    def outcome(
        self,
        scenario: str,
        ledger: dict[str, dict[str, int]],
        *,
        fault_at: float,
        drained_at: float,
        recovery_seconds: float | None,
        note: str = "",
    ) -> Outcome:
        counts = ledger["executions"]
        return Outcome(
            scenario=scenario,
            submitted=len(counts),
            completed=sum(1 for n in counts.values() if n >= 1),
            lost=sum(1 for n in counts.values() if n == 0),
            duplicated=sum(1 for n in counts.values() if n > 1),
            redelivered=sum(1 for n in ledger["redelivered"].values() if n > 0),
            recovery_seconds=None if recovery_seconds is None else round(recovery_seconds, 1),
            drain_seconds=round(drained_at - fault_at, 1),
            refused=self.refused,
            note=note,
        )


def format_table(outcomes: list[Outcome]) -> str:
    header = (
        "scenario",
        "submitted",
        "completed",
        "lost",
        "duplicated",
        "redelivered",
        "refused 503",
        "recovery s",
        "drain s",
    )
    rows = [
        (
            o.scenario,
            str(o.submitted),
            str(o.completed),
            str(o.lost),
            str(o.duplicated),
            str(o.redelivered),
            str(o.refused),
            "-" if o.recovery_seconds is None else f"{o.recovery_seconds:.1f}",
            f"{o.drain_seconds:.1f}",
        )
        for o in outcomes
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"- {o.scenario}: {o.note}" for o in outcomes if o.note]
    return "\n".join(lines + ([""] + notes if notes else []))


def write_json(path: str, outcomes: list[Outcome]) -> None:
    with open(path, "w") as out:
        json.dump([o.as_dict() for o in outcomes], out, indent=2)
