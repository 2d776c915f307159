"""Where a gunicorn or Celery worker's time goes: py-spy's collapsed stacks summed per package and
function, and per process.

py-spy `record --format raw` writes one line per distinct stack: frames separated by ";",
outermost first, each "function (path:line)", then a space and the sample count. Idle threads
are left out by py-spy unless it runs with --idle; the bench records with --idle and keeps the
stacks that pass through the app's own code, so waits (a publisher confirm, a Redis reply) count.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

PROCESS = re.compile(r"^process (?P<pid>\d+):")
FRAME = re.compile(r"^(?P<function>.*?) \((?P<path>[^()]*?)(?::\d+)?\)$")
SITE_PACKAGES = re.compile(r"/(?:site|dist)-packages/(?P<package>[^/]+)")
STDLIB = re.compile(r"/python3(?:\.\d+)?/(?P<module>[^/]+)")


def parse_collapsed(text: str) -> list[tuple[list[str], int]]:
    """(frames outermost first, samples) per line of py-spy's raw output."""
    stacks = []
    for line in text.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def frame_parts(frame: str) -> tuple[str, str]:
    """(function, path) of one frame; path "" for py-spy's process/thread pseudo-frames."""
    match = FRAME.match(frame.strip())
    if not match or not ("." in match["path"] or match["path"].startswith("<")):
        return frame.strip(), ""
    return match["function"], match["path"]


def package_of(path: str) -> str:
    """The installed package a file belongs to, "stdlib:<module>", or the path's last part."""
    if found := SITE_PACKAGES.search(path):
        return found["package"].removesuffix(".py")
    if found := STDLIB.search(path):
        return "stdlib:" + found["module"].removesuffix(".py")
    return path.rsplit("/", 1)[-1] or "?"


def summarize(
    stacks: list[tuple[list[str], int]], top: int = 12, within: str | None = None
) -> dict[str, Any]:
    """Samples by package (self time of the innermost frame) and the top functions (self and
    inclusive time), as shares of all samples; with `within`, only the stacks that pass through
    that package (recorded with --idle: the time requests spend in it, waits included)."""
    total = 0
    by_package: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        real = [frame_parts(f) for f in frames if frame_parts(f)[1]]
        if not real or (within and all(package_of(p) != within for _, p in real)):
            continue
        total += count
        function, path = real[-1]
        by_package[package_of(path)] += count
        self_time[f"{function} ({package_of(path)})"] += count
        for name in {f"{fn} ({package_of(p)})" for fn, p in real}:
            inclusive[name] += count

    def shares(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"name": name, "samples": n, "share": n / total if total else 0.0}
            for name, n in counter.most_common(top)
        ]

    return {
        "within": within,
        "samples": total,
        "by_package": shares(by_package),
        "self": shares(self_time),
        "inclusive": shares(inclusive),
    }


def process_of(frames: list[str]) -> int | None:
    """The pid of the process a stack was sampled in, or None: with --subprocesses py-spy puts a
    `process <pid>:"<cmdline>"` pseudo-frame for it and one for each of its ancestors up to the
    profiled pid, outermost (the ancestor) first, so the sampled process is the last of them."""
    pids = [int(match["pid"]) for frame in frames if (match := PROCESS.match(frame.strip()))]
    return pids[-1] if pids else None


def split_by_process(
    stacks: list[tuple[list[str], int]], main_pids: set[int]
) -> dict[str, list[tuple[list[str], int]]]:
    """The stacks of the given (main) processes under "main", every other process's (a worker's
    pool children, forked from it) under "pool"."""
    parts: dict[str, list[tuple[list[str], int]]] = {"main": [], "pool": []}
    for frames, count in stacks:
        parts["main" if process_of(frames) in main_pids else "pool"].append((frames, count))
    return parts


def active_threads(stacks: list[tuple[list[str], int]], rate: int, seconds: float) -> float | None:
    """From stacks recorded without --idle: how many threads py-spy found not idle, on average.
    Not CPU time: py-spy counts a thread blocked in a socket read as active (on a worker, its
    time on the CPU was a third of this or less: compare the kernel's count, proc_cpu_ticks)."""
    samples = sum(count for _, count in stacks)
    return samples / rate / seconds if rate and seconds > 0 else None


def proc_cpu_ticks(pids: list[int]) -> str:
    """A shell command printing `cpu <main ticks> <pool ticks>`: the user + system CPU clock ticks
    so far of the given (main) processes, and of their children: the live ones' own plus what
    the main processes have reaped (cutime + cstime), as pool children are replaced
    (--max-tasks-per-child). Fields 14-17 of /proc/PID/stat, counted after `(comm)`."""

    def total(first: int) -> str:
        """Sums fields first and first + 1 of the stat lines on stdin (after `(comm) `)."""
        return f"sed 's/.*) //' | awk '{{s += ${first} + ${first + 1}}} END {{print s + 0}}'"

    stats = " ".join(f"/proc/{pid}/stat" for pid in pids)
    children = f"for c in $(pgrep -P {','.join(map(str, pids))}); do cat /proc/$c/stat; done"
    main = f"cat {stats} | {total(12)}"
    reaped = f"cat {stats} | {total(14)}"
    live = f"{children} | {total(12)}"
    return f'echo "cpu $({main}) $(( $({reaped}) + $({live}) ))"'


def proc_cpu_seconds(stdout: str) -> dict[str, float]:
    """{"main": s, "pool": s}: the CPU seconds between the two `cpu` lines of proc_cpu_ticks in
    stdout, whose last line is `getconf CLK_TCK`."""
    lines = stdout.split("\n")
    before, after = (
        [int(n) for n in line.split()[1:]] for line in lines if line.startswith("cpu ")
    )
    hertz = int(stdout.split()[-1])
    return {key: (after[i] - before[i]) / hertz for i, key in enumerate(("main", "pool"))}
