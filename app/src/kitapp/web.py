"""The HTTP API and the small HTML page (``create_app()``; served by gunicorn via wsgi.py).

The web processes only publish tasks (by name) and read results; they never import or run
the task code, so they need no worker to start.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from typing import Any

from celery import Celery
from flask import Flask, Response, jsonify, render_template, request
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from kitapp.config import Settings
from kitapp.job_store import JobRecord, JobStore, MemoryJobStore, RedisJobStore
from kitapp.public_tasks import ValidationError, validate_job_request

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 2
RECENT_DEFAULT = 20
RECENT_MAX = 100


class ServiceUnavailable(Exception):
    """A backing service (broker or result store) did not answer."""


def _error(message: str, status: int, **extra: Any) -> tuple[Response, int]:
    body: dict[str, Any] = {"error": message}
    body.update(extra)
    return jsonify(body), status


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _iso(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.isoformat()
    return str(value)


def _timestamp_iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat()


def _parse_job_id(raw: str) -> str | None:
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return None


class JobService:
    """Submits jobs and reads their state; raises ServiceUnavailable when a backend is down."""

    def __init__(self, celery: Celery, settings: Settings, store: JobStore) -> None:
        self.celery = celery
        self.settings = settings
        self.store = store

    def submit(self, task: str, celery_name: str, args: list[object]) -> JobRecord:
        job = JobRecord(id=str(uuid.uuid4()), task=task, submitted_at=time.time())
        try:
            self.store.record(job)
        except RedisError as exc:
            raise ServiceUnavailable(f"result store unavailable: {_short(exc)}") from exc
        try:
            self.celery.send_task(celery_name, args=args, task_id=job.id)
        except Exception as exc:  # kombu OperationalError, socket errors, nacked publish
            log.warning("publishing %s failed: %s", job.id, _short(exc))
            try:
                self.store.forget(job.id)
            except RedisError:
                log.warning("could not remove the record of unpublished job %s", job.id)
            raise ServiceUnavailable(f"broker unavailable: {_short(exc)}") from exc
        return job

    def describe(self, job: JobRecord) -> dict[str, Any]:
        try:
            meta = self.celery.backend.get_task_meta(job.id)
        except Exception as exc:  # redis errors, connection errors
            raise ServiceUnavailable(f"result store unavailable: {_short(exc)}") from exc
        state = str(meta.get("status") or "PENDING")
        out: dict[str, Any] = {
            "id": job.id,
            "task": job.task,
            "state": state,
            "submitted_at": _timestamp_iso(job.submitted_at),
            "date_done": _iso(meta.get("date_done")),
        }
        if meta.get("retries"):
            out["retries"] = meta["retries"]
        result = meta.get("result")
        if state == "SUCCESS":
            out["result"] = result
        elif state in ("FAILURE", "RETRY", "REVOKED") and result is not None:
            out["error"] = _short(result) if isinstance(result, BaseException) else str(result)
        return out

    def lookup(self, job_id: str) -> JobRecord | None:
        try:
            return self.store.get(job_id)
        except RedisError as exc:
            raise ServiceUnavailable(f"result store unavailable: {_short(exc)}") from exc

    def recent(self, limit: int) -> list[dict[str, Any]]:
        try:
            jobs = self.store.recent(limit)
        except RedisError as exc:
            raise ServiceUnavailable(f"result store unavailable: {_short(exc)}") from exc
        return [self.describe(job) for job in jobs]

    def check_broker(self) -> str | None:
        """None when at least one broker URL accepts a connection, else why not."""
        problems = []
        for url in self.settings.broker_urls:
            try:
                with self.celery.connection_for_write(
                    url, connect_timeout=HEALTH_TIMEOUT_SECONDS, heartbeat=0
                ) as conn:
                    conn.ensure_connection(
                        max_retries=1,
                        interval_start=0,
                        interval_step=0,
                        interval_max=0,
                        timeout=HEALTH_TIMEOUT_SECONDS + 1,
                    )
                return None
            except Exception as exc:
                problems.append(_short(exc))
        return "; ".join(problems) or "no broker configured"

    def check_results(self) -> str | None:
        try:
            self.store.ping()
        except Exception as exc:
            return _short(exc)
        return None


def create_app(
    settings: Settings | None = None,
    celery: Celery | None = None,
    store: JobStore | None = None,
) -> Flask:
    if settings is None or celery is None:
        from kitapp.celery_app import app as default_celery
        from kitapp.celery_app import settings as default_settings

        settings = settings or default_settings
        celery = celery or default_celery
    if store is None:
        store = (
            RedisJobStore(settings.result_backend, settings.result_expires)
            if settings.result_backend_is_redis
            else MemoryJobStore(settings.result_expires)
        )
    service = JobService(celery, settings, store)

    flask_app = Flask(__name__)
    flask_app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    flask_app.json.sort_keys = False  # type: ignore[attr-defined]
    flask_app.extensions["kitapp_jobs"] = service

    @flask_app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        response = exc.get_response()
        response.data = json.dumps({"error": exc.description or exc.name}).encode()
        response.content_type = "application/json"
        return response

    @flask_app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> tuple[Response, int]:
        return _error(
            f"request body is larger than the limit of {settings.max_request_bytes} bytes", 413
        )

    @flask_app.errorhandler(ServiceUnavailable)
    def unavailable(exc: ServiceUnavailable) -> tuple[Response, int]:
        return _error(str(exc), 503)

    @flask_app.errorhandler(Exception)
    def internal_error(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error("internal server error", 500)

    @flask_app.get("/ping")
    def ping() -> Response:
        return Response("pong", mimetype="text/plain")

    @flask_app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        broker = service.check_broker()
        results = service.check_results() if settings.result_backend_is_redis else broker
        body = {"broker": broker or "ok", "results": results or "ok"}
        if broker or results:
            body = {"error": "a backing service is unavailable", **body}
            return jsonify(body), 503
        return jsonify(body), 200

    @flask_app.post("/api/jobs")
    def submit_job() -> tuple[Response, int] | Response:
        raw = request.get_data(cache=False)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            return _error(f"request body is not valid JSON: {exc}", 400)
        if not isinstance(body, dict):
            return _error("request body must be a JSON object", 400)
        try:
            job_request = validate_job_request(body)
        except ValidationError as exc:
            return _error(str(exc), 422)
        job = service.submit(job_request.task, job_request.celery_name, list(job_request.args))
        location = f"/api/jobs/{job.id}"
        response = jsonify({"id": job.id, "task": job.task, "state": "PENDING", "url": location})
        response.status_code = 202
        response.headers["Location"] = location
        return response

    @flask_app.get("/api/jobs/<job_id>")
    def get_job(job_id: str) -> tuple[Response, int] | Response:
        normalised = _parse_job_id(job_id)
        if normalised is None:
            return _error("malformed job id: expected a UUID", 404)
        job = service.lookup(normalised)
        if job is None:
            return _error(f"unknown job id {normalised}", 404)
        return jsonify(service.describe(job))

    @flask_app.get("/api/jobs")
    def list_jobs() -> tuple[Response, int] | Response:
        raw_limit = request.args.get("limit", str(RECENT_DEFAULT))
        try:
            limit = int(raw_limit)
        except ValueError:
            return _error(f"limit must be an integer between 1 and {RECENT_MAX}", 400)
        if not 1 <= limit <= RECENT_MAX:
            return _error(f"limit must be an integer between 1 and {RECENT_MAX}", 400)
        return jsonify({"jobs": service.recent(limit)})

    @flask_app.get("/")
    def index() -> str:
        return render_template("index.html")

    return flask_app
