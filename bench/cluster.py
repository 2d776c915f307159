"""The cluster as the inventory describes it: resolved variables and commands on its hosts.

Names, addresses, ports, paths and users come from tests/resolve-vars.yml (the way
tests/conftest.py reads them); commands run over testinfra's Ansible backend (the inventory's
own SSH settings), as root, and scripts run as the app user through the app's with-env. The
app's processes are controlled the way the tests control them (tests/app_processes.py), so the
bench runs on either process manager the kit supports (supervisor or systemd).
"""

from __future__ import annotations

import base64
import json
import shlex
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import testinfra

ROOT = Path(__file__).resolve().parent.parent
REMOTE_DIR = Path(__file__).resolve().parent / "remote"
DEFAULT_INVENTORY = ROOT / "ansible" / "inventories" / "vagrant"
ANSIBLE_ENV = {"ANSIBLE_CONFIG": str(ROOT / "ansible" / "ansible.cfg")}
TESTS_DIR = ROOT / "tests"  # on sys.path, as pytest puts it for the tests (tests/conftest.py)
if str(TESTS_DIR) not in sys.path:
    sys.path.append(str(TESTS_DIR))

from app_processes import AppProcesses  # noqa: E402 - tests/app_processes.py, through TESTS_DIR
from cluster_runs import RESOLVE_VARS, run_playbook  # noqa: E402 - the tests' playbook runner

T = TypeVar("T")


class ClusterNotUp(RuntimeError):
    """The cluster (or one of its hosts) is not reachable or not provisioned."""


class RemoteError(RuntimeError):
    """A command on a host failed."""


def resolve_vars(inventory: Path) -> dict[str, dict[str, Any]]:
    """Per inventory host: its groups, cluster address and the roles' resolved variables."""
    with tempfile.TemporaryDirectory(prefix="kit-bench-vars-") as tmp:
        out = Path(tmp) / "kit-vars.json"
        proc = run_playbook(str(inventory), str(RESOLVE_VARS), "-e", f"kit_vars_file={out}")
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
        self._bounded = BoundedHost(self)
        self._stop_timeout: float | None = None

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

    @cached_property
    def processes(self) -> AppProcesses:
        """The app's processes on this host, whatever manager runs them: the tests' process
        control (tests/app_processes.py), its commands bounded like run()'s."""
        return AppProcesses(self._bounded, self.vars)

    def kit_workers(self) -> list[str]:
        """The host's kit worker processes, as its process manager names them (every process of
        every worker group the roles deployed here)."""
        return self.processes.workers()

    def stop_timeout(self) -> float:
        """Bound of one stop or start of every kit worker: the manager waits up to each process's
        warm-stop time, one process after another at worst (supervisorctl with process names),
        plus slack. Read once per host."""
        if self._stop_timeout is None:
            waits = [self.processes.stop_settings(name).wait_seconds for name in self.kit_workers()]
            self._stop_timeout = float(sum(waits) + 60)
        return self._stop_timeout

    def control_workers(self, action: str) -> dict[str, int]:
        """Stops or starts every kit worker process (one manager command for all of them), checks
        they all reached the state (RUNNING, or not) and returns each one's main pid (0: not
        running)."""
        control = {"stop": self.processes.stop, "start": self.processes.start}[action]
        names = self.kit_workers()
        if not names:
            return {}
        with self._bounded.limit(self.stop_timeout()):
            control(*names)
        states = {name: self.processes.state(name) for name in names}
        if any((state == "RUNNING") != (action == "start") for state, _ in states.values()):
            found = ", ".join(f"{name} {state}" for name, (state, _) in states.items())
            raise RemoteError(f"{self.name}: after `{action}`: {found}")
        return {name: pid for name, (_, pid) in states.items()}

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


class BoundedHost:
    """The testinfra host API AppProcesses uses (run, run_expect; file, service and the rest are
    testinfra's own), every command run through Host.run: killed after `timeout` seconds."""

    def __init__(self, host: Host, timeout: float = 30) -> None:
        self._owner = host
        self.timeout = timeout

    @contextmanager
    def limit(self, timeout: float) -> Iterator[None]:
        """Each command run within the block gets `timeout` seconds."""
        before, self.timeout = self.timeout, timeout
        try:
            yield
        finally:
            self.timeout = before

    def run(self, command: str, *args: str) -> Any:
        if args:  # testinfra's own substitution: each argument shell-quoted
            command = command % tuple(shlex.quote(str(arg)) for arg in args)
        return self._owner.run(command, timeout=self.timeout, check=False)

    def run_expect(self, expected: list[int], command: str, *args: str) -> Any:
        result = self.run(command, *args)
        if result.rc not in expected:
            raise RemoteError(
                f"{self._owner.name}: `{command[:200]}` exited {result.rc}: "
                f"{(result.stderr or result.stdout).strip()[-1500:]}"
            )
        return result

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._owner._host, name)


def remote_files() -> dict[str, bytes]:
    """The scripts copied to a host: everything in bench/remote."""
    return {p.name: p.read_bytes() for p in sorted(REMOTE_DIR.iterdir()) if p.is_file()}


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
