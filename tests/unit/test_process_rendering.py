"""The app_processes role renders the same programs for supervisor and for systemd.

The roles' own program lists (workers, beat, gunicorn, flower) go through the role's own templates
for both managers (tests/unit/render-processes.yml, on the control node only); each program's
supervisor file and systemd unit must agree on what runs and how it stops.
"""

from __future__ import annotations

import configparser
import json
import shlex
from pathlib import Path

import pytest
import yaml
from cluster_runs import playbook

SETPRIV = ["/usr/bin/setpriv", "--no-new-privs", "--"]

INVENTORY = {
    "all": {
        "vars": {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        },
        "hosts": {
            "worker1": {
                "cluster_address": "192.0.2.21",
                # The role's default group, and one with limits of its own (no memory cap).
                "celery_worker_groups": [
                    {"name": "default", "queues": ["kitapp"], "concurrency": 2},
                    {
                        "name": "long",
                        "queues": ["long"],
                        "time_limit": 900,
                        "soft_time_limit": 600,
                        "max_memory_per_child": 0,
                    },
                ],
            },
            "web1": {"cluster_address": "192.0.2.31", "gunicorn_tcp_address": "192.0.2.31"},
        },
        "children": {
            "celery_workers": {"hosts": {"worker1": {}}},
            "celery_beat": {"hosts": {"worker1": {}}},
            "web": {"hosts": {"web1": {}}},
        },
    }
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("rendered")
    inventory = folder / "inventory.yml"
    inventory.write_text(yaml.safe_dump(INVENTORY))
    out = folder / "out"
    playbook(
        str(inventory),
        str(Path(__file__).with_name("render-processes.yml")),
        "-e",
        f"render_dir={out}",
    )
    return out


def supervisor_program(path: Path) -> configparser.SectionProxy:
    parser = configparser.RawConfigParser()
    parser.read_string(path.read_text())
    (section,) = [s for s in parser.sections() if s.startswith("program:")]
    return parser[section]


def supervisor_expand(value: str, process_num: int) -> str:
    """What supervisor makes of a value: its %(name)s expansions, %% to %."""
    return value.replace("%(process_num)02d", f"{process_num:02d}").replace("%%", "%")


def systemd_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> values, continuation lines joined."""
    text = path.read_text().replace("\\\n", " ")
    unit: dict[str, dict[str, list[str]]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            unit[section] = {}
            continue
        key, value = line.split("=", 1)
        unit[section].setdefault(key, []).append(value)
    return unit


def systemd_expand(value: str, instance: str) -> str:
    """What systemd makes of a value: %i the instance, %% to %, $$ to $."""
    return value.replace("%i", instance).replace("%%", "%").replace("$$", "$")


def programs(rendered: Path) -> list[tuple[str, dict]]:
    """(host, process) for every process of both hosts, as the role names them for systemd."""
    return [
        (host.name, process)
        for host in sorted(rendered.iterdir())
        for process in json.loads((host / "systemd" / "instances.json").read_text())
    ]


def test_every_role_program_is_rendered_for_both_managers(rendered: Path) -> None:
    roles = {process["role"] for _, process in programs(rendered)}
    assert roles == {"celery_worker", "celery_beat", "gunicorn", "flower"}


def test_supervisor_and_systemd_agree_on_command_user_stop_and_log(rendered: Path) -> None:
    for host, process in programs(rendered):
        name, instance = process["program"], process["instance"]
        number = int(instance) if instance else 0
        sup = supervisor_program(rendered / host / "supervisor" / f"{name}.conf")
        unit_file = f"{name}@.service" if instance else f"{name}.service"
        unit = systemd_unit(rendered / host / "systemd" / unit_file)
        service = unit["Service"]

        sup_argv = shlex.split(supervisor_expand(sup["command"], number))
        # supervisor starts each program through setpriv (no_new_privs), which execs it.
        assert sup_argv[: len(SETPRIV)] == SETPRIV, name
        sup_argv = sup_argv[len(SETPRIV) :]
        systemd_argv = shlex.split(systemd_expand(service["ExecStart"][0], instance))
        socket_file = rendered / host / "systemd" / f"{name}.socket"
        if socket_file.exists():
            # The program's listeners: systemd's socket unit, or the program's own arguments.
            listen = systemd_unit(socket_file)["Socket"]["ListenStream"]
            extra = sup_argv[len(systemd_argv) :]
            assert [a for a in extra if a.startswith("--bind=")] == [
                f"--bind=unix:{s}" if s.startswith("/") else f"--bind={s}" for s in listen
            ], name
            assert unit["Unit"]["Requires"] == [f"{name}.socket"], name
            sup_argv = sup_argv[: len(systemd_argv)]
        assert sup_argv == systemd_argv, name
        assert "{instance}" not in " ".join(sup_argv), name

        assert sup["user"] == service["User"][0] == service["Group"][0], name
        assert sup["directory"] == service["WorkingDirectory"][0], name
        assert f"SIG{sup['stopsignal']}" == service["KillSignal"][0], name
        assert int(sup["stopwaitsecs"]) == int(service["TimeoutStopSec"][0]), name
        # supervisor's stopasgroup=false + killasgroup=true is systemd's KillMode=mixed.
        kill_mode = "mixed" if sup["stopasgroup"] == "false" else "control-group"
        assert sup["killasgroup"] == "true", name
        assert service["KillMode"] == [kill_mode], name
        assert sup["autorestart"] == "true" and service["Restart"] == ["always"], name

        sup_log = supervisor_expand(sup["stdout_logfile"].replace("%(program_name)s", name), number)
        systemd_log = systemd_expand(service["StandardOutput"][0], instance)
        assert systemd_log == f"append:{sup_log}" == f"append:{process['log']}", name

        sup_env = dict(item.split("=", 1) for item in sup.get("environment", "").split(",") if item)
        systemd_env = dict(item.split("=", 1) for item in service.get("Environment", []))
        assert {k: v.strip('"') for k, v in sup_env.items()} == systemd_env, name


def option(argv: list[str], name: str) -> int:
    (value,) = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    return int(value)


@pytest.mark.parametrize(("group", "hard", "soft"), [("default", 360, 300), ("long", 900, 600)])
def test_a_worker_has_its_groups_time_limits_and_outwaits_the_hard_one(
    rendered: Path, group: str, hard: int, soft: int
) -> None:
    """Every group's tasks get a hard and a soft limit on the worker's command line, whatever the
    project's own configuration says; the stop (Celery's warm shutdown: TERM to the main process
    only) waits longer than the hard limit, so a stop never kills a task within its limit."""
    sup = supervisor_program(rendered / "worker1" / "supervisor" / f"kitapp-worker-{group}.conf")
    argv = shlex.split(sup["command"])
    assert (option(argv, "time-limit"), option(argv, "soft-time-limit")) == (hard, soft)
    assert sup["stopasgroup"] == "false"
    assert int(sup["stopwaitsecs"]) > hard


@pytest.mark.parametrize(("group", "cap_kib"), [("default", 524288), ("long", None)])
def test_a_worker_replaces_a_pool_process_past_its_groups_memory_cap(
    rendered: Path, group: str, cap_kib: int | None
) -> None:
    """The role's memory cap is on every group's command line; a group can turn it off (0)."""
    sup = supervisor_program(rendered / "worker1" / "supervisor" / f"kitapp-worker-{group}.conf")
    argv = shlex.split(sup["command"])
    flags = [a for a in argv if a.startswith("--max-memory-per-child=")]
    assert (option(argv, "max-memory-per-child") if flags else None) == cap_kib


def test_each_manager_names_a_process_once_and_by_its_own_rule(rendered: Path) -> None:
    for host in rendered.iterdir():
        sup = json.loads((host / "supervisor" / "instances.json").read_text())
        sysd = json.loads((host / "systemd" / "instances.json").read_text())
        assert [p["program"] for p in sup] == [p["program"] for p in sysd]
        for s, d in zip(sup, sysd, strict=True):
            if s["instance"]:
                assert s["control"] == f"{s['program']}:{s['program']}-{s['instance']}"
                assert d["control"] == f"{d['program']}@{d['instance']}.service"
            else:
                assert (s["control"], d["control"]) == (s["program"], f"{d['program']}.service")


def test_every_systemd_unit_is_sandboxed_read_only_but_for_its_write_paths(rendered: Path) -> None:
    """No capabilities, no new privileges, the system read-only; workers and beat write only the
    app's state folder (downloads, beat's schedule), gunicorn and Flower nothing."""
    expected_writes = {
        "celery_worker": ["/var/lib/kitapp"],
        "celery_beat": ["/var/lib/kitapp"],
        "gunicorn": [],
        "flower": [],
    }
    for host, process in programs(rendered):
        name = process["program"]
        unit_file = f"{name}@.service" if process["instance"] else f"{name}.service"
        service = systemd_unit(rendered / host / "systemd" / unit_file)["Service"]
        assert service["ProtectSystem"] == ["strict"], name
        assert service["NoNewPrivileges"] == ["yes"], name
        assert service["CapabilityBoundingSet"] == [""], name
        assert service["PrivateTmp"] == ["yes"] and service["ProtectHome"] == ["yes"], name
        writes = service.get("ReadWritePaths", [""])[0].split()
        assert writes == expected_writes[process["role"]], name


def test_each_worker_process_is_waited_for_by_a_ping_to_its_own_node(rendered: Path) -> None:
    checks = json.loads((rendered / "worker1" / "ready-checks.json").read_text())
    instances = json.loads((rendered / "worker1" / "supervisor" / "instances.json").read_text())
    workers = [i for i in instances if i["role"] == "celery_worker"]
    assert [c["name"] for c in checks] == [f"{i['program']}-{i['instance']}" for i in workers]
    for check, worker in zip(checks, workers, strict=True):
        assert check["argv"][-3:-1] == ["ping", "--timeout=5"], check
        assert check["argv"][-1] == f"--destination={worker['group']}-{worker['instance']}@worker1"
        assert check["user"] == "kitapp" and check["seconds"] == 120, check
    # Beat and the web programs have no readiness check.
    assert json.loads((rendered / "web1" / "ready-checks.json").read_text()) == []
