"""Workers die, hosts stop, workers are stopped: no accepted job is lost.

Tasks are acknowledged late and given back when the process running them dies
(task_acks_late, task_reject_on_worker_lost), so RabbitMQ redelivers them.
"""

from __future__ import annotations

import ast
import time

import pytest
import requests
from app_processes import AppProcesses, stop_on_every_host
from cluster_ops import (
    children,
    lxc,
    lxc_container,
    pool_ready,
)
from cluster_runs import app_command, wait_until
from ledger_batch import DRAIN_POLL_SECONDS, Outcome

DRAIN_TIMEOUT = 240


@pytest.fixture(scope="module")
def victim(worker_hosts: list[str]) -> str:
    """The worker host the faults are injected on (the other keeps working)."""
    return worker_hosts[0]


def wait_for_jobs_on(host, hv: dict, batch) -> None:
    """Returns once the host's worker has received some of the batch's jobs (its log says so):
    the fault then hits jobs in flight, not an idle or still-connecting worker."""
    log = f"{hv['celery_app_log_dir']}/{hv['celery_app_name']}-worker-*-00.log"
    patterns = " ".join(f"-e {job_id}" for job_id in batch.accepted)
    wait_until(
        lambda: (
            host.run(f"grep -h -F {patterns} {log} | grep -c received").stdout.strip()
            not in ("", "0")
        ),
        60,
        "the victim's worker to receive jobs of the batch",
        interval=0.5,
    )


def concurrency(hv: dict) -> int:
    return int(hv["celery_worker_groups"][0].get("concurrency", 1))


def test_pool_process_killed_mid_task_loses_no_task(
    hosts, kit_vars, victim, new_batch, report
) -> None:
    host, hv = hosts[victim], kit_vars[victim]
    processes = AppProcesses(host, hv)
    process = processes.workers()[0]
    main_pid = pool_ready(processes, process, concurrency(hv))
    assert main_pid, f"{process} on {victim} is not running with a full pool"

    batch = new_batch(seconds=2)
    batch.submit(24)
    wait_for_jobs_on(host, hv, batch)
    time.sleep(1)  # every pool process is now inside a 2 s job
    pool = host.run(f"pgrep -P {main_pid}").stdout.split()
    fault_at = time.monotonic()
    host.run_expect([0], f"kill -KILL {pool[0]}")
    # The worker replaces the pool process itself; the process manager has nothing to do.
    wait_until(
        lambda: (
            pool_ready(processes, process, concurrency(hv)) == main_pid
            and pool[0] not in host.run(f"pgrep -P {main_pid}").stdout.split()
        ),
        60,
        "the worker to replace its killed pool process",
    )
    recovered = time.monotonic() - fault_at
    outcome = batch.settle(
        report,
        "worker pool process SIGKILLed",
        fault_at=fault_at,
        recovery_seconds=recovered,
        note="the killed process's job is rejected back to the queue (reject_on_worker_lost)",
        timeout=DRAIN_TIMEOUT,
    )
    assert outcome.redelivered >= 1, "the kill hit no job in flight"
    assert processes.state(process) == ("RUNNING", main_pid)


def test_worker_main_process_killed_mid_task_loses_no_task(
    hosts, kit_vars, victim, new_batch, report
) -> None:
    host, hv = hosts[victim], kit_vars[victim]
    processes = AppProcesses(host, hv)
    process = processes.workers()[0]
    old_pid = pool_ready(processes, process, concurrency(hv))
    assert old_pid

    batch = new_batch(seconds=2)
    batch.submit(24)
    wait_for_jobs_on(host, hv, batch)
    fault_at = time.monotonic()
    host.run_expect([0], f"kill -KILL {old_pid}")
    new_pid = wait_until(
        lambda: pool_ready(processes, process, concurrency(hv), not_pid=old_pid),
        90,
        "the process manager to restart the killed worker",
    )
    recovered = time.monotonic() - fault_at
    outcome = batch.settle(
        report,
        "worker main process SIGKILLed",
        fault_at=fault_at,
        recovery_seconds=recovered,
        note="its connection closes, so RabbitMQ redelivers the unacknowledged jobs; a pool "
        "process that was orphaned mid-job may still finish it (a duplicate)",
        timeout=DRAIN_TIMEOUT,
    )
    assert outcome.redelivered >= 1, "the kill hit no job in flight"
    assert new_pid != old_pid

    # No pool process of the killed worker is left running: every celery worker process on the
    # host is a running worker's main process or one of its pool's.
    def leftovers() -> set[int]:
        live = {processes.pid(name) for name in processes.workers()}
        live |= {child for pid in live for child in children(host, pid)}
        found = host.run(f"pgrep -u {hv['celery_app_user']} -f 'bin/celery .*worker'").stdout
        return {int(pid) for pid in found.split()} - live

    wait_until(lambda: not leftovers(), 60, "the killed worker's pool processes to exit")


def test_worker_host_hard_stopped_and_restarted_loses_no_task(
    hosts, kit_vars, victim, new_batch, report
) -> None:
    host, hv = hosts[victim], kit_vars[victim]
    processes = AppProcesses(host, hv)
    process = processes.workers()[0]
    container = lxc_container(victim)

    batch = new_batch(seconds=2)
    batch.submit(30)
    wait_for_jobs_on(host, hv, batch)
    fault_at = time.monotonic()
    lxc("stop", "--kill", "-n", container)  # no shutdown: the power is cut
    time.sleep(5)
    lxc("start", "-n", container)
    wait_until(
        lambda: pool_ready(processes, process, concurrency(hv)),
        180,
        f"the worker on {victim} to come back at boot",
        interval=3,
    )
    recovered = time.monotonic() - fault_at
    outcome = batch.settle(
        report,
        f"worker host {victim} hard-stopped, restarted",
        fault_at=fault_at,
        recovery_seconds=recovered,
        note="jobs it held are redelivered once RabbitMQ sees its connection gone",
        timeout=DRAIN_TIMEOUT,
    )
    assert outcome.redelivered >= 1, "the stop hit no job in flight"


def test_stopping_workers_lets_running_jobs_finish(
    hosts, kit_vars, worker_hosts, new_batch, report
) -> None:
    seconds = 12
    slots = sum(concurrency(kit_vars[name]) for name in worker_hosts)
    batch = new_batch(seconds=seconds)
    batch.submit(slots)  # one job per pool process: all run at once

    def all_started() -> bool:
        states = [
            requests.get(f"{batch.web_url}/api/jobs/{i}", timeout=10).json()["state"]
            for i in batch.accepted
        ]
        return all(state == "STARTED" for state in states)

    wait_until(all_started, 60, "every job to start", interval=0.5)
    fault_at = time.monotonic()
    every_host = {name: AppProcesses(hosts[name], kit_vars[name]) for name in worker_hosts}
    stopped = stop_on_every_host({name: (p, p.workers()) for name, p in every_host.items()})
    ledger = batch.ledger()  # nothing is left to run: every job was running
    for processes in every_host.values():
        for process in processes.workers():
            processes.start(process)
    time.sleep(DRAIN_POLL_SECONDS)
    outcome = batch.outcome(
        f"workers stopped ({kit_vars[worker_hosts[0]]['app_processes_manager']}) during long jobs",
        ledger,
        fault_at=fault_at,
        drained_at=fault_at + max(stopped.values()),
        recovery_seconds=max(stopped.values()),
        note=f"recovery = time the stop took (jobs of {seconds} s were running; "
        "warm shutdown waits for them)",
    )
    report(outcome)
    assert (outcome.lost, outcome.duplicated, outcome.redelivered) == (0, 0, 0), ledger
    stopwait = int(kit_vars[worker_hosts[0]]["celery_worker_task_time_limit"]) + int(
        kit_vars[worker_hosts[0]]["celery_worker_stop_grace"]
    )
    assert all(2 < took < stopwait for took in stopped.values()), stopped


def memory_cap_kib(hv: dict) -> int:
    """The first worker group's --max-memory-per-child, as its program's command line has it."""
    command = hv["celery_worker_programs"][0]["command"]
    flags = [arg for arg in command if arg.startswith("--max-memory-per-child=")]
    assert flags, f"no --max-memory-per-child on {command}"
    return int(flags[0].split("=", 1)[1])


def test_task_leaking_past_the_memory_cap_completes_and_its_pool_process_is_replaced(
    hosts, kit_vars, worker_hosts, read_ledger, report
) -> None:
    hv = kit_vars[worker_hosts[0]]
    megabytes = memory_cap_kib(hv) // 1024 + 16  # past the cap by this task alone
    logs = f"{hv['celery_app_log_dir']}/{hv['celery_app_name']}-worker-*.log"
    main_pids = {name: AppProcesses(hosts[name], kit_vars[name]).pids() for name in worker_hosts}
    celery = [f"{hv['celery_app_base_dir']}/current/bin/celery", f"--app={hv['celery_app_module']}"]
    client = hosts[worker_hosts[0]]
    sent = client.run(app_command(hv, *celery, "call", "kitapp.leak", f"--args='[{megabytes}]'"))
    assert sent.rc == 0, sent.stderr
    job_id = sent.stdout.strip().splitlines()[-1]
    fault_at = time.monotonic()
    got = client.run(app_command(hv, "timeout", "120", *celery, "result", job_id))
    assert got.rc == 0, got.stderr
    result = ast.literal_eval(got.stdout.strip().splitlines()[-1])
    names = {hosts[n].check_output("hostname"): n for n in worker_hosts}
    ran_on = names[result["hostname"]]

    # The pool process that leaked exits after the job; the worker starts another in its place.
    wait_until(
        lambda: hosts[ran_on].run(f"kill -0 {result['pid']}").rc != 0,
        60,
        f"the leaking pool process {result['pid']} on {ran_on} to be replaced",
    )
    recovered = time.monotonic() - fault_at
    # Replaced, not killed: billiard logs "pid:N exited with ..." for any other exit (a signal,
    # an error code), not for the cap's recycle exit; and the worker itself kept running.
    died = hosts[ran_on].run(f"cat {logs} | grep -c -F 'pid:{result['pid']} exited'")
    assert died.stdout.strip() == "0", died.stdout
    processes = AppProcesses(hosts[ran_on], kit_vars[ran_on])
    assert processes.pids() == main_pids[ran_on]
    assert pool_ready(processes, processes.workers()[0], concurrency(kit_vars[ran_on]))

    ledger = read_ledger([job_id])
    executions = ledger["executions"][job_id]
    report(
        Outcome(
            scenario=f"a task leaking {megabytes} MB past --max-memory-per-child",
            submitted=1,
            completed=int(executions >= 1),
            lost=int(executions == 0),
            duplicated=int(executions > 1),
            redelivered=ledger["redelivered"][job_id],
            recovery_seconds=recovered,
            drain_seconds=recovered,
            note="recovery = job sent -> done, its pool process replaced",
        )
    )
    assert (executions, ledger["redelivered"][job_id]) == (1, 0), ledger


# The test's own nftables table on the worker host: it drops every packet of the worker's broker
# connections as they are when the fault starts (by their local ports), as a link that dies
# without a FIN or RST does; connections opened later are not touched.
SILENT_TABLE = "kit_test_silent_link"


def broker_ports_of(host, pid: int, broker_port: int) -> list[int]:
    """Local ports of the process's established connections to a broker."""
    lines = host.check_output(f"ss -tnpH state established '( dport = :{broker_port} )'")
    return sorted(
        int(line.split()[2].rsplit(":", 1)[1])
        for line in lines.splitlines()
        if f"pid={pid}," in line
    )


def test_worker_whose_broker_link_goes_silent_is_restarted_by_the_watchdog_losing_nothing(
    hosts, kit_vars, victim, new_batch, report
) -> None:
    hv = kit_vars[victim]
    host = hosts[victim]
    processes = AppProcesses(host, hv)
    worker = processes.workers()[0]
    pid = processes.pid(worker)
    broker_port = int(
        hv["rabbitmq_tls_port"] if hv["rabbitmq_tls_enabled"] else hv["rabbitmq_amqp_port"]
    )
    ports = broker_ports_of(host, pid, broker_port)
    assert ports, f"{worker} (pid {pid}) has no broker connection"
    table = f"inet {SILENT_TABLE}"
    listed = "{ " + ", ".join(map(str, ports)) + " }"
    batch = new_batch(seconds=0.1)
    started = host.check_output("date '+%Y-%m-%d %H:%M:%S'")
    for command in (
        f"nft add table {table}",
        f"nft 'add chain {table} input {{ type filter hook input priority -10; }}'",
        f"nft 'add chain {table} output {{ type filter hook output priority -10; }}'",
        f"nft 'add rule {table} input tcp dport {listed} drop'",
        f"nft 'add rule {table} output tcp sport {listed} drop'",
    ):
        host.run_expect([0], command)
    fault_at = time.monotonic()
    try:
        batch.submit(6)
        # The watchdog misses it celery_watchdog_misses times in a row, then restarts it; or
        # it starts the worker again once supervisor gave up on it.
        allowed = (
            int(hv["celery_watchdog_interval"]) * (int(hv["celery_watchdog_misses"]) + 2) + 120
        )
        new_pid = wait_until(
            lambda: pool_ready(processes, worker, concurrency(hv), not_pid=pid),
            allowed,
            f"the watchdog to restart {worker}",
            2,
        )
        recovered = time.monotonic() - fault_at
    finally:
        host.run_expect([0], f"nft delete table {table}")
    journal = host.check_output(
        f"journalctl --no-pager -u {hv['celery_watchdog_unit']}.service --since '{started}'"
    )
    # Either way is the watchdog's: it ended the worker that no longer answered, or it started
    # the worker again that had noticed the dead link itself and then failed to start until the
    # broker dropped the old connection (supervisor gives up after its start retries).
    assert "restarting it" in journal or "starting it again" in journal, journal[-2000:]
    assert new_pid != pid
    batch.settle(
        report,
        f"{worker}'s broker link went silent (watchdog)",
        fault_at=fault_at,
        recovery_seconds=recovered,
        note="recovery: the watchdog restarted the worker and its new pool is up",
        timeout=DRAIN_TIMEOUT,
    )
