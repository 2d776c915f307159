"""Pure statistics shared by the orchestrator and the scripts run on the hosts.

No imports beyond the standard library: this file is copied to the hosts beside the scripts
that use it and runs under the app's own Python there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The pct-th percentile (0..100) by linear interpolation between closest ranks."""
    if not values:
        return None
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile must be within 0..100, got {pct}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * pct / 100
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(ordered[low])
    weight = position - low
    return float(ordered[low] * (1 - weight) + ordered[high] * weight)


def rate(count: int, seconds: float) -> float | None:
    """count / seconds, or None when nothing was timed."""
    if count <= 0 or seconds <= 0:
        return None
    return count / seconds


def steady_rate(timestamps: Sequence[float], trim: float = 0.05) -> float | None:
    """Events per second between the trim and 1-trim quantiles of the event times.

    Ramp-up (workers connecting, pools forking) and the last stragglers are left out, so the
    figure is the rate while every consumer was busy. Needs at least 10 events.
    """
    if len(timestamps) < 10:
        return None
    if not 0 <= trim < 0.5:
        raise ValueError(f"trim must be within 0..0.5, got {trim}")
    ordered = sorted(timestamps)
    first = math.floor(trim * (len(ordered) - 1))
    last = math.ceil((1 - trim) * (len(ordered) - 1))
    return rate(last - first, ordered[last] - ordered[first])


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def count_between(timestamps: Sequence[float], start: float, end: float) -> int:
    """How many of the event times fall within [start, end]."""
    return sum(1 for moment in timestamps if start <= moment <= end)
