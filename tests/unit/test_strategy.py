"""The kit's strategy (ansible/plugins/strategy/kit_linear.py): modules run in Mitogen's
interpreter when Mitogen is installed, and a control node without it falls back to Ansible's
stock linear strategy with a warning instead of failing. Checked on the control node itself
(localhost): the module's parent process is Mitogen's interpreter, or Ansible's module wrapper."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from cluster_runs import ANSIBLE_DIR, ANSIBLE_ENV

PARENT_COMMAND = 'tr "\\0" " " < /proc/$PPID/cmdline'


def run_on_localhost(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ansible", "localhost", "-m", "ansible.builtin.shell", "-a", PARENT_COMMAND],
        cwd=ANSIBLE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_modules_run_in_mitogens_interpreter() -> None:
    run = run_on_localhost(ANSIBLE_ENV)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "(mitogen:" in run.stdout, run.stdout


def test_control_node_without_mitogen_falls_back_to_the_stock_strategy(tmp_path: Path) -> None:
    hidden = tmp_path / "ansible_mitogen"
    hidden.mkdir()
    (hidden / "__init__.py").write_text("raise ImportError('not installed here')\n")
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    run = run_on_localhost({**ANSIBLE_ENV, "PYTHONPATH": path})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "mitogen is not installed" in run.stderr, run.stderr
    assert "(mitogen:" not in run.stdout and "AnsiballZ_" in run.stdout, run.stdout
