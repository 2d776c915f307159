"""The watchdog's judgement of the host's workers (ansible/roles/celery_watchdog/files), without
a broker: which workers count as missing, and when one is restarted."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

CHECK = (
    Path(__file__).resolve().parents[2] / "ansible/roles/celery_watchdog/files/celery-watchdog.py"
)
_spec = importlib.util.spec_from_file_location("celery_watchdog", CHECK)
assert _spec and _spec.loader
watchdog = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = watchdog  # its dataclass looks its module up while it is defined
_spec.loader.exec_module(watchdog)

HOST = "worker1"
DEFAULT = watchdog.parse_worker(
    "default-00=kitapp-worker-default:kitapp-worker-default-00=kitapp", HOST
)
DOWNLOADS = watchdog.parse_worker("downloads-00=kitapp-worker-downloads@00.service=dl,dl2", HOST)
WORKERS = [DEFAULT, DOWNLOADS]
RUNNING = {DEFAULT.control: 101, DOWNLOADS.control: 202}
ALL_CONSUMING = {DEFAULT.node: {"kitapp"}, DOWNLOADS.node: {"dl", "dl2"}}


def check(state, answered, consumed=None, running=None, misses=3):
    return watchdog.decide(
        WORKERS,
        RUNNING if running is None else running,
        set(answered),
        ALL_CONSUMING if consumed is None else consumed,
        state,
        misses,
    )


def test_a_worker_spec_names_the_node_on_this_host_its_control_and_queues() -> None:
    assert DOWNLOADS.node == "downloads-00@worker1"
    assert DOWNLOADS.control == "kitapp-worker-downloads@00.service"
    assert DOWNLOADS.queues == {"dl", "dl2"}


def test_workers_that_answer_and_consume_are_left_alone() -> None:
    state, restart = check({}, [DEFAULT.node, DOWNLOADS.node])
    assert restart == []
    assert state == {
        DEFAULT.node: {"pid": 101, "missed": 0},
        DOWNLOADS.node: {"pid": 202, "missed": 0},
    }


def test_a_worker_missing_three_checks_in_a_row_is_restarted_and_no_other() -> None:
    state: dict = {}
    for expected in (1, 2):
        state, restart = check(state, [DOWNLOADS.node])
        assert restart == []
        assert state[DEFAULT.node]["missed"] == expected
    state, restart = check(state, [DOWNLOADS.node])
    assert restart == [DEFAULT]
    assert state[DEFAULT.node]["missed"] == 0


def test_one_answer_between_misses_starts_the_count_again() -> None:
    state, _ = check({}, [DOWNLOADS.node])
    state, _ = check(state, [DOWNLOADS.node])
    state, _ = check(state, [DEFAULT.node, DOWNLOADS.node])
    state, restart = check(state, [DOWNLOADS.node])
    assert restart == []
    assert state[DEFAULT.node]["missed"] == 1


def test_a_worker_that_answers_but_no_longer_consumes_a_queue_of_its_group_counts_as_missing() -> (
    None
):
    answered = [DEFAULT.node, DOWNLOADS.node]
    consumed = {DEFAULT.node: {"kitapp"}, DOWNLOADS.node: {"dl"}}
    state: dict = {}
    for _ in range(3):
        state, restart = check(state, answered, consumed)
    assert restart == [DOWNLOADS]


def test_a_worker_the_manager_does_not_report_running_is_not_judged() -> None:
    running = {DOWNLOADS.control: 202}  # default stopped, starting or stopping
    state: dict = {}
    for _ in range(5):
        state, restart = check(state, [DOWNLOADS.node], running=running)
        assert restart == []
    assert DEFAULT.node not in state


def test_a_new_main_pid_starts_counting_from_zero() -> None:
    state, _ = check({}, [DOWNLOADS.node])
    state, _ = check(state, [DOWNLOADS.node])
    state, restart = check(state, [DOWNLOADS.node], running={**RUNNING, DEFAULT.control: 303})
    assert restart == []
    assert state[DEFAULT.node] == {"pid": 303, "missed": 1}


def test_only_a_running_supervisor_program_has_a_pid_to_judge() -> None:
    line = "kitapp-worker-default:kitapp-worker-default-00   {} pid 2315, uptime 0:04:45"
    assert watchdog.supervisor_pid(line.format("RUNNING")) == 2315
    assert watchdog.supervisor_pid(line.format("STOPPING")) == 0
    assert watchdog.supervisor_pid("kitapp-worker-default-00   STARTING") == 0
    assert watchdog.supervisor_pid("kitapp-worker-default-00   STOPPED   Dec 06 12:00 PM") == 0


def test_only_a_fatal_supervisor_program_counts_as_given_up() -> None:
    line = "kitapp-worker-default:kitapp-worker-default-00   {}"
    assert watchdog.supervisor_gave_up(line.format("FATAL     Exited too quickly (process log"))
    assert not watchdog.supervisor_gave_up(line.format("STOPPED   Dec 06 12:00 PM"))
    assert not watchdog.supervisor_gave_up(line.format("BACKOFF   Exited too quickly"))
    assert not watchdog.supervisor_gave_up(line.format("RUNNING   pid 2315, uptime 0:04:45"))


def test_a_check_without_a_user_to_ask_as_is_refused(capsys) -> None:
    """The project's code is imported only as the app's user, never by the root check itself."""
    args = ["--app=kitapp.celery_app", "--manager=supervisor", "--state=/nonexistent/state.json"]
    with pytest.raises(SystemExit) as exit_:
        watchdog.main([*args, "default-00=kitapp-worker-default=kitapp"])
    assert exit_.value.code == 2
    assert "--ask-as" in capsys.readouterr().err
