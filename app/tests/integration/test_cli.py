"""The console scripts against the real broker, worker and result store."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import uuid
from pathlib import Path

from conftest import VHOST, Proc, Web, kitapp_env, poll_until_done, start_proc, submit, wait_for

BIN = Path(sys.executable).parent


def test_kitapp_tutorial_json(worker: Proc, tmp_root: Path) -> None:
    done = subprocess.run(
        [str(BIN / "kitapp-tutorial"), "--json", "--timeout", "60"],
        env=kitapp_env(tmp_root),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
    assert output["taskPrintOSName"]["value"] == os.name
    assert output["taskPrintSystem"]["value"] == platform.system()
    assert output["taskPrintSystemRelease"]["value"] == platform.release()
    assert done.stderr.count("ready: False") == 3


def test_kitapp_tutorial_plain(worker: Proc, tmp_root: Path) -> None:
    done = subprocess.run(
        [str(BIN / "kitapp-tutorial"), "--timeout", "60"],
        env=kitapp_env(tmp_root),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("ready: False") == 3
    assert "3/3 tasks done" in done.stdout
    assert f"taskPrintSystem: {{'value': '{platform.system()}'" in done.stdout


def test_kitapp_tutorial_times_out_without_worker(tmp_root: Path) -> None:
    # A queue that no worker consumes: nothing can finish.
    done = subprocess.run(
        [str(BIN / "kitapp-tutorial"), "--timeout", "2"],
        env=kitapp_env(tmp_root, KITAPP_DEFAULT_QUEUE="kitapp-integration-nobody"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "timeout: not all tasks finished in 2 s" in done.stderr


def test_check_config_ok_and_redacted(tmp_root: Path) -> None:
    secret = "s3cr3t-Pw"
    env = kitapp_env(
        tmp_root,
        KITAPP_BROKER_URLS=f"amqp://kit:{secret}@rabbit1/v;amqp://kit:{secret}@rabbit2/v",
        KITAPP_RESULT_BACKEND=f"redis://:{secret}@127.0.0.1:6379/1",
    )
    done = subprocess.run(
        [str(BIN / "kitapp-check-config")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["default_queue"] == "kitapp-integration"
    assert secret not in done.stdout
    assert shown["broker_urls"] == ["amqp://kit:***@rabbit1/v", "amqp://kit:***@rabbit2/v"]
    assert shown["result_backend"] == "redis://:***@127.0.0.1:6379/1"


def test_check_config_error_exits_2(tmp_root: Path) -> None:
    done = subprocess.run(
        [str(BIN / "kitapp-check-config")],
        env=kitapp_env(tmp_root, KITAPP_TASK_TIME_LIMIT="10", KITAPP_TASK_SOFT_TIME_LIMIT="20"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "KITAPP_TASK_TIME_LIMIT must be an integer > KITAPP_TASK_SOFT_TIME_LIMIT" in done.stderr


def test_quorum_queue_end_to_end(services: None, tmp_root: Path) -> None:
    """A worker on a quorum queue (x-queue-type=quorum, per-consumer QoS) runs the tutorial."""
    queue = "kitapp-integration-quorum"
    env = kitapp_env(tmp_root, KITAPP_QUEUE_TYPE="quorum", KITAPP_DEFAULT_QUEUE=queue)
    worker = start_proc(
        "quorum-worker",
        [sys.executable, "-m", "celery", "-A", "kitapp.celery_app", "worker", "-l", "INFO",
         "-c", "1", f"--hostname=kitapp-it-quorum-{os.getpid()}@%h", "--without-mingle",
         "--without-gossip"],
        env,
        tmp_root / "quorum-worker.log",
    )  # fmt: skip
    try:
        wait_for(lambda: " ready." in worker.log(), 60, "the quorum worker to be ready")
        done = subprocess.run(
            [str(BIN / "kitapp-tutorial"), "--json", "--timeout", "60"],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert done.returncode == 0, done.stderr + worker.log()[-3000:]
        assert json.loads(done.stdout)["taskPrintOSName"]["value"] == os.name
        listed = subprocess.run(
            ["rabbitmqctl", "-q", "list_queues", "-p", VHOST, "name", "type"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        assert any(line.split() == [queue, "quorum"] for line in listed.splitlines()), listed
    finally:
        worker.stop()


def test_ledger_counts_each_completed_job_once_and_unknown_ids_zero(
    web: Web, tmp_root: Path
) -> None:
    job = submit(web, "ledger", 0.1)
    body, _ = poll_until_done(web, job["id"])
    assert body["state"] == "SUCCESS", body
    assert body["result"]["executions"] == 1
    never_submitted = str(uuid.uuid4())
    done = subprocess.run(
        [str(BIN / "kitapp-ledger")],
        input=f"{job['id']}\n{never_submitted}\n",
        env=kitapp_env(tmp_root),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "executions": {job["id"]: 1, never_submitted: 0},
        "redelivered": {job["id"]: 0, never_submitted: 0},
    }
