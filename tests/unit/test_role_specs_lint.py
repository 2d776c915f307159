"""The role-specs lint (tests/lint/role_specs.py) names each variable one file has and the
other lacks."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lint"))

from role_specs import disagreements  # noqa: E402


def make_role(root: Path, defaults: str, specs: str) -> Path:
    role = root / "demo"
    (role / "defaults").mkdir(parents=True)
    (role / "meta").mkdir()
    (role / "defaults" / "main.yml").write_text(defaults)
    (role / "meta" / "argument_specs.yml").write_text(specs)
    return role


SPECS = (
    "argument_specs:\n  main:\n    options:\n      demo_a: {type: str}\n      demo_b: {type: str}\n"
)


def test_roles_whose_defaults_and_specs_agree_pass(tmp_path: Path) -> None:
    assert disagreements(make_role(tmp_path, "demo_a: x\ndemo_b: !vault |\n  abc\n", SPECS)) == []


def test_a_default_without_a_spec_and_a_spec_without_a_default_are_named(tmp_path: Path) -> None:
    role = make_role(tmp_path, "demo_a: x\ndemo_c: y\n", SPECS)
    assert disagreements(role) == [
        "demo: demo_c is in defaults/main.yml, not in argument_specs",
        "demo: demo_b is in argument_specs, not in defaults/main.yml",
    ]
