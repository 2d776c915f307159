"""Whether RabbitMQ nodes can go from the versions they run to a target in one rolling upgrade.

RabbitMQ's rule (docs: Rolling (in-place) Upgrade): a rolling upgrade may not skip a release
series. A patch release within the running series is fine (3.13.0 -> 3.13.7); so is the next
series (3.12 -> 3.13, 3.13 -> 4.0, 4.0 -> 4.1); skipping one (3.12 -> 4.0, Debian 12's 3.10 ->
Debian 13's 4.0) is not, nor is going back. A cluster in the middle of an upgrade runs two
versions; the target must be reachable from the oldest of them.
"""

from __future__ import annotations

import re

# The release series in order. A series not listed (newer than this list) is refused, by name,
# until it is added here: whether it follows the last one is not something to guess.
SERIES = ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "4.0", "4.1", "4.2", "4.3"]
VERSION = re.compile(r"^(?:\d+:)?(\d+)\.(\d+)\.(\d+)")


def upstream(version: str) -> tuple[int, int, int]:
    """RabbitMQ's own version in a package version (1:4.0.5-6+deb13u2 -> (4, 0, 5))."""
    match = VERSION.match(version.strip())
    if not match:
        raise ValueError(f"not a RabbitMQ version: {version!r}")
    return int(match[1]), int(match[2]), int(match[3])


def series(version: tuple[int, int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def rabbitmq_upgrade_refusal(running: list[str], target: str) -> str:
    """Why the nodes running `running` cannot be upgraded to `target` in one rolling upgrade,
    or "" when they can (also when every node already runs it)."""
    try:
        versions = sorted({upstream(v) for v in running})
        wanted = upstream(target)
    except ValueError as error:
        return str(error)
    if not versions:
        return "no node reported its version"
    oldest, newest = versions[0], versions[-1]
    name = ".".join(map(str, wanted))
    if wanted < newest:
        return f"{name} is older than {'.'.join(map(str, newest))}: RabbitMQ is not downgraded"
    for version in (oldest, wanted):
        if series(version) not in SERIES:
            return f"release series {series(version)} is not in the kit's list of series"
    steps = SERIES.index(series(wanted)) - SERIES.index(series(oldest))
    if steps > 1:
        between = SERIES[SERIES.index(series(oldest)) + 1 : SERIES.index(series(wanted))]
        return (
            f"{'.'.join(map(str, oldest))} -> {name} skips the series {', '.join(between)}: a"
            " rolling upgrade goes one series at a time (or deploy a new cluster beside this one"
            " and move the clients: blue/green)"
        )
    return ""


def rabbitmq_upstream_version(version: str) -> str:
    """ "4.0.5" of a package version such as 4.0.5-6+deb13u2."""
    return ".".join(map(str, upstream(version)))


class FilterModule:
    def filters(self) -> dict:
        return {
            "rabbitmq_upgrade_refusal": rabbitmq_upgrade_refusal,
            "rabbitmq_upstream_version": rabbitmq_upstream_version,
        }
