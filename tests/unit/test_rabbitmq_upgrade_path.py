"""The broker upgrade's guard (ansible/plugins/filter/rabbitmq_upgrade.py): which version jumps a
rolling upgrade may make."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[2] / "ansible/plugins/filter/rabbitmq_upgrade.py"
_spec = importlib.util.spec_from_file_location("rabbitmq_upgrade", PLUGIN)
assert _spec and _spec.loader
plugin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plugin)
refusal = plugin.rabbitmq_upgrade_refusal


@pytest.mark.parametrize(
    ("running", "target"),
    [
        (["4.0.5"] * 3, "4.0.5"),  # nothing to do
        (["3.13.0"] * 3, "3.13.7"),  # a patch release
        (["3.13.7"] * 3, "4.0.5"),  # the next series
        (["4.0.5", "4.0.5", "4.1.2"], "4.1.2"),  # half-way through that upgrade
        (["4.0.5-6+deb13u2"], "1:4.1.0-1"),  # Debian's package versions
    ],
)
def test_a_patch_or_the_next_series_is_allowed(running, target) -> None:
    assert refusal(running, target) == ""


def test_debian_12_to_13_skips_three_series_and_names_them() -> None:
    why = refusal(["3.10.8-1.1+deb12u1"] * 3, "4.0.5-6+deb13u2")
    assert "3.10.8 -> 4.0.5 skips the series 3.11, 3.12, 3.13" in why
    assert "blue/green" in why


def test_a_cluster_half_way_is_judged_by_its_oldest_node() -> None:
    assert "skips the series 4.0" in refusal(["3.13.7", "4.0.5"], "4.1.0")


def test_a_downgrade_is_refused() -> None:
    assert "not downgraded" in refusal(["4.0.5"] * 3, "3.13.7")


@pytest.mark.parametrize(
    ("running", "target", "named"),
    [
        (["4.3.1"], "5.0.0", "series 5.0"),  # unknown: not guessed to be the next
        (["4.0.5"], "latest", "not a RabbitMQ version: 'latest'"),
        ([], "4.0.5", "no node reported"),
    ],
)
def test_what_it_cannot_judge_is_refused_by_name(running, target, named) -> None:
    assert named in refusal(running, target)


def test_the_upstream_version_of_a_package_version() -> None:
    assert plugin.rabbitmq_upstream_version("1:4.0.5-6+deb13u2") == "4.0.5"
