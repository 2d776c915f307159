"""Progress lines for a long benchmark: wall clock, time since start, phase, host, message."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.phase = "setup"
        self.phase_started = self.started

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def begin(self, phase: str) -> None:
        self.phase = phase
        self.phase_started = time.monotonic()
        self.say(f"--- {phase} ---")

    def phase_seconds(self) -> float:
        return time.monotonic() - self.phase_started

    def say(self, message: str, host: str | None = None) -> None:
        where = f" [{host}]" if host else ""
        print(
            f"[{time.strftime('%H:%M:%S')} +{self.elapsed():6.1f}s] {self.phase}{where}: {message}",
            file=sys.stderr,
            flush=True,
        )
