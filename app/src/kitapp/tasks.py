"""The tasks: the tutorial's three, plus noop, sleep, download, ledger and poison.

Each has an explicit, stable Celery name ("kitapp.<function name>") so that producers can
send it by name without importing this module.
"""

from __future__ import annotations

import functools
import os
import platform
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

import requests
from celery import Task
from celery.utils.log import get_task_logger

from kitapp.celery_app import app, settings
from kitapp.downloads import TransientDownloadError, download_to_dir, prune_downloads
from kitapp.ledger import Ledger

logger = get_task_logger(__name__)


def _tutorial_step(task: Task, label: str, probe: Callable[[], str]) -> dict[str, Any]:
    logger.info("%s started (task id %s)", label, task.request.id)
    time.sleep(settings.tutorial_sleep_seconds)
    value = probe()
    logger.info("%s: %s", label, value)
    return {
        "value": value,
        "hostname": socket.gethostname(),
        "worker": task.request.hostname,
    }


@app.task(bind=True, name="kitapp.taskPrintOSName")
def taskPrintOSName(self: Task) -> dict[str, Any]:  # noqa: N802 - the tutorial's name
    return _tutorial_step(self, "taskPrintOSName", lambda: os.name)


@app.task(bind=True, name="kitapp.taskPrintSystem")
def taskPrintSystem(self: Task) -> dict[str, Any]:  # noqa: N802 - the tutorial's name
    return _tutorial_step(self, "taskPrintSystem", platform.system)


@app.task(bind=True, name="kitapp.taskPrintSystemRelease")
def taskPrintSystemRelease(self: Task) -> dict[str, Any]:  # noqa: N802 - the tutorial's name
    return _tutorial_step(self, "taskPrintSystemRelease", platform.release)


@app.task(bind=True, name="kitapp.noop")
def noop(self: Task) -> dict[str, Any]:
    return {"hostname": socket.gethostname(), "worker": self.request.hostname}


@app.task(bind=True, name="kitapp.sleep")
def sleep(self: Task, seconds: float) -> dict[str, Any]:
    time.sleep(float(seconds))
    return {"slept": float(seconds), "hostname": socket.gethostname()}


@app.task(
    bind=True,
    name="kitapp.download",
    autoretry_for=(requests.ConnectionError, requests.Timeout, TransientDownloadError),
    retry_backoff=True,  # 1 s, 2 s, 4 s
    retry_backoff_max=60,
    # No jitter: jitter can draw a 0 s countdown, and then the retried message may run and
    # fail on another process before this one has stored RETRY, which would overwrite the
    # final FAILURE with RETRY (seen in the integration tests with concurrency 2).
    retry_jitter=False,
    max_retries=3,
)
def download(self: Task, url: str) -> dict[str, Any]:
    """Download a URL into KITAPP_DOWNLOAD_DIR (DownloadError and subclasses: not retried).

    Before each download the folder is pruned (files older than KITAPP_DOWNLOAD_MAX_AGE,
    then the oldest until KITAPP_DOWNLOAD_QUOTA_BYTES leaves room for this download), so the
    cap holds without another service; KITAPP_DOWNLOAD_DEADLINE bounds the whole download.
    """
    logger.info("download of %s started (attempt %d)", url, self.request.retries + 1)
    _prune_download_dir()
    result = download_to_dir(
        url,
        settings.download_dir,
        max_bytes=settings.download_max_bytes,
        timeout=settings.download_timeout,
        deadline=settings.download_deadline,
        allowed_networks=settings.download_allowed_networks,
    )
    logger.info("downloaded %s: %d bytes to %s", url, result.bytes, result.path)
    return {
        "path": result.path,
        "bytes": result.bytes,
        "sha256": result.sha256,
        "hostname": socket.gethostname(),
    }


def _prune_download_dir() -> None:
    try:
        removed = prune_downloads(
            settings.download_dir,
            max_age=settings.download_max_age,
            quota_bytes=settings.download_quota_bytes,
            reserve_bytes=settings.download_max_bytes,
            # A partial file unmodified for the hard time limit has no live writer.
            part_max_age=settings.task_time_limit,
        )
    except OSError as exc:  # the download itself reports a folder it cannot use
        logger.warning("cannot prune %s: %s", settings.download_dir, exc)
        return
    if removed:
        logger.info("removed %d old download(s) from %s", len(removed), settings.download_dir)


@functools.cache
def _ledger() -> Ledger:
    return Ledger(settings.result_backend, settings.result_expires)


@app.task(bind=True, name="kitapp.ledger")
def ledger(self: Task, seconds: float) -> dict[str, Any]:
    """Works for `seconds`, then counts one complete execution of this job id in the ledger."""
    time.sleep(float(seconds))
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    executions = _ledger().record(self.request.id, redelivered=redelivered)
    return {"executions": executions, "hostname": socket.gethostname()}


@app.task(bind=True, name="kitapp.poison")
def poison(self: Task) -> dict[str, Any]:
    """A fault-test job with a fatal bug: it kills the process running it (as a crash in a C
    extension or the kernel's out-of-memory killer would) until the ledger marks its id cured;
    then it counts one execution. Not on the web API: only a broker client can send it."""
    if not _ledger().is_cured(self.request.id):
        logger.warning("poison %s: killing its own pool process %d", self.request.id, os.getpid())
        os.kill(os.getpid(), signal.SIGKILL)
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    executions = _ledger().record(self.request.id, redelivered=redelivered)
    return {"executions": executions, "hostname": socket.gethostname()}


# What kitapp.leak keeps, for as long as its pool process lives.
_LEAKED: list[bytes] = []


@app.task(bind=True, name="kitapp.leak")
def leak(self: Task, megabytes: int) -> dict[str, Any]:
    """A fault-test job with a memory leak: it keeps `megabytes` of memory (touched, so resident)
    in its pool process, then counts one execution. The worker's --max-memory-per-child replaces
    the process after the job. Not on the web API: only a broker client can send it."""
    _LEAKED.append(b"\x01" * (int(megabytes) * 1024 * 1024))
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    executions = _ledger().record(self.request.id, redelivered=redelivered)
    return {"executions": executions, "hostname": socket.gethostname(), "pid": os.getpid()}
