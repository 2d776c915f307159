"""The cluster as the inventory describes it: resolved variables and commands on its hosts.

Names, addresses, ports, paths and users come from ansible/resolve-vars.yml (the way
tests/conftest.py reads them); commands run over testinfra's Ansible backend (the inventory's
own SSH settings), as root, and scripts run as the app user through the app's with-env.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import testinfra

ROOT = Path(__file__).resolve().parent.parent
REMOTE_DIR = Path(__file__).resolve().parent / "remote"
DEFAULT_INVENTORY = ROOT / "ansible" / "inventories" / "vagrant"
ANSIBLE_ENV = {"ANSIBLE_CONFIG": str(ROOT / "ansible" / "ansible.cfg")}

T = TypeVar("T")


class ClusterNotUp(RuntimeError):
    """The cluster (or one of its hosts) is not reachable or not provisioned."""


class RemoteError(RuntimeError):
    """A command on a host failed."""


def resolve_vars(inventory: Path) -> dict[str, dict[str, Any]]:
    """Per inventory host: its groups, cluster address and the roles' resolved variables."""
    with tempfile.TemporaryDirectory(prefix="kit-bench-vars-") as tmp:
        out = Path(tmp) / "kit-vars.json"
        proc = subprocess.run(
            [
                "ansible-playbook",
                "-i",
                str(inventory),
                str(ROOT / "ansible" / "resolve-vars.yml"),
                "-e",
                f"kit_vars_file={out}",
            ],
            cwd=ROOT / "ansible",
            env={**os.environ, **ANSIBLE_ENV},
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr)[-2000:]
            raise ClusterNotUp(f"resolving the inventory's variables failed:\n{tail}")
        return json.loads(out.read_text())


def parallel(func: Callable[[T], Any], items: Iterable[T]) -> list[Any]:
    """func(item) for every item at once (one thread each); re-raises the first error."""
    items = list(items)
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        return list(pool.map(func, items))


class Host:
    """One inventory host: `run` as root, `app_script` as the app user with the app's env."""

    def __init__(self, name: str, hostvars: dict[str, Any], inventory: Path) -> None:
        self.name = name
        self.vars = hostvars
        self._host = testinfra.get_host(
            f"ansible://{name}?ansible_inventory={inventory}", sudo=True
        )

    @property
    def app_user(self) -> str:
        return self.vars["celery_app_user"]

    def run(self, command: str, timeout: float, check: bool = True) -> Any:
        """Runs command as root, killed after timeout seconds (coreutils timeout)."""
        bounded = f"timeout -k 10 {int(timeout)} sh -c {shlex.quote(command)}"
        result = self._host.run(bounded)
        if check and result.rc != 0:
            raise RemoteError(
                f"{self.name}: `{command[:200]}` exited {result.rc}: "
                f"{(result.stderr or result.stdout).strip()[-1500:]}"
            )
        return result

    def reachable(self) -> str | None:
        """None if the host answers over SSH with sudo, else the reason it does not."""
        try:
            result = self._host.run("sudo -n true")
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        if result.rc != 0:
            return (result.stderr or result.stdout).strip()[-500:] or f"exit {result.rc}"
        return None

    def make_workdir(self, path: str, files: dict[str, bytes]) -> None:
        """A 0700 directory owned by the app user, holding the given files."""
        user = shlex.quote(self.app_user)
        self.run(f"install -d -m 0700 -o {user} -g {user} {shlex.quote(path)}", timeout=30)
        for name, content in files.items():
            target = shlex.quote(f"{path}/{name}")
            encoded = base64.b64encode(content).decode()
            self.run(
                f"echo {encoded} | base64 -d > {target} && chown {user}: {target} "
                f"&& chmod 0600 {target}",
                timeout=30,
            )

    def app_command(self, workdir: str, argv: list[str]) -> str:
        base = self.vars["celery_app_base_dir"]
        return (
            f"cd {shlex.quote(workdir)} && sudo -u {shlex.quote(self.app_user)} "
            f"{base}/bin/with-env {base}/current/bin/python {shlex.join(argv)}"
        )

    def app_script(self, workdir: str, argv: list[str], timeout: float) -> dict[str, Any]:
        """Runs a bench script as the app user; returns the JSON object it printed last."""
        result = self.run(self.app_command(workdir, argv), timeout=timeout, check=False)
        lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
        if not lines:
            raise RemoteError(
                f"{self.name}: {argv[0]} exited {result.rc} without a result: "
                f"{(result.stderr or result.stdout).strip()[-1500:]}"
            )
        out = json.loads(lines[-1])
        if result.rc != 0:
            out.setdefault("exit_code", result.rc)
        return out


def remote_files() -> dict[str, bytes]:
    """The scripts copied to a host: everything in bench/remote."""
    return {p.name: p.read_bytes() for p in sorted(REMOTE_DIR.iterdir()) if p.is_file()}


def worker_programs(hostvars: dict[str, Any]) -> list[str]:
    """Supervisor program names of the worker groups the roles deployed on a host."""
    app = hostvars["celery_app_name"]
    return [
        f"{app}-worker-{group['name']}"
        for group in hostvars["celery_worker_groups"]
        if group.get("state", "present") == "present"
    ]


def kit_worker_processes(kit_vars: dict[str, dict[str, Any]]) -> int:
    """Pool processes consuming the kit's queue, over every worker host."""
    total = 0
    for hv in kit_vars.values():
        if "celery_workers" not in hv["groups"]:
            continue
        for group in hv["celery_worker_groups"]:
            if group.get("state", "present") != "present":
                continue
            if hv["kitapp_default_queue"] in group["queues"]:
                total += int(group.get("concurrency", 1)) * int(group.get("numprocs", 1))
    return total
