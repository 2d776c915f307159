"""Every cluster host gives an SSH session a terminal (`vagrant ssh`, `ssh -t`, and Ansible
without pipelining, which runs each module through `ssh -tt`). Ansible's stock linear strategy
(a control node without Mitogen runs it): the kit's Mitogen strategy keeps its own connection
and allocates no terminal."""

from __future__ import annotations

import re
import subprocess

from cluster_runs import ANSIBLE_DIR, ANSIBLE_ENV


def test_ssh_session_without_pipelining_gets_a_terminal_on_every_host(inventory, kit_vars):
    run = subprocess.run(
        ["ansible", "all", "-i", inventory, "-m", "ansible.builtin.command", "-a", "tty"],
        cwd=ANSIBLE_DIR,
        env={**ANSIBLE_ENV, "ANSIBLE_STRATEGY": "linear", "ANSIBLE_PIPELINING": "False"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    terminals = dict(
        re.findall(r"^(\S+) \| CHANGED \| rc=0 >>\s*\n(/dev/pts/\d+)", run.stdout, re.M)
    )
    assert sorted(terminals) == sorted(kit_vars), run.stdout
