"""Lint: each role's meta/argument_specs.yml documents exactly the variables its
defaults/main.yml sets (the same key set), so neither can drift from the other.

Run by `make lint`; exits 1 and names each role and variable that disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROLES = Path(__file__).resolve().parents[2] / "ansible" / "roles"


class _Loader(yaml.SafeLoader):
    """Reads Ansible's YAML: `!vault` and other tags as plain values."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def disagreements(role: Path) -> list[str]:
    defaults_file = role / "defaults" / "main.yml"
    specs_file = role / "meta" / "argument_specs.yml"
    defaults = set(
        (yaml.load(defaults_file.read_text(), _Loader) or {}) if defaults_file.exists() else {}
    )
    if not specs_file.exists():
        return [f"{role.name}: no meta/argument_specs.yml"] if defaults else []
    specs = yaml.load(specs_file.read_text(), _Loader) or {}
    options = set(((specs.get("argument_specs") or {}).get("main") or {}).get("options") or {})
    problems = [
        f"{role.name}: {name} is in defaults/main.yml, not in argument_specs"
        for name in sorted(defaults - options)
    ]
    problems += [
        f"{role.name}: {name} is in argument_specs, not in defaults/main.yml"
        for name in sorted(options - defaults)
    ]
    return problems


def main() -> int:
    problems = [p for role in sorted(ROLES.iterdir()) if role.is_dir() for p in disagreements(role)]
    for problem in problems:
        print(problem)
    if not problems:
        print(f"role specs: defaults and argument_specs agree in every role under {ROLES}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
