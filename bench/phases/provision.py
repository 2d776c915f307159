"""Provisioning (BENCH_PROVISION=1): a warm site.yml with the kit's SSH settings, then without
pipelining and ControlPersist; the cold first run from tests/results/phases.txt."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import provision  # bench/provision.py (absolute import: not this module)

from phases.common import timed_site_yml

if TYPE_CHECKING:
    from run import Bench


def run(bench: Bench) -> dict[str, Any]:
    out: dict[str, Any] = provision.cold_from_phases()
    for key, overrides in (
        ("warm_default", {}),
        ("warm_without_pipelining", provision.WITHOUT_PIPELINING),
    ):
        out[key] = timed_site_yml(bench, "provision", key, overrides)
    return out
