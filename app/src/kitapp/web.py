"""The HTTP API and the small HTML page (``create_app()``; served by gunicorn via wsgi.py).

The web processes only publish tasks (by name) and read results; they never import or run
the task code, so they need no worker to start.

Access: with ``KITAPP_API_TOKEN_HASHES`` set, submitting (POST /api/jobs) and listing
(GET /api/jobs) need ``Authorization: Bearer <token>``, and a listing shows only the jobs
submitted with the same token. Polling one job (GET /api/jobs/<id>) stays open: its id is a
random UUID that only the submitter was told. Without token hashes the whole API is open.

What clients are told never names an internal address: a broker or result store that does
not answer is "unavailable" (the details go to the log), and the IP addresses and host:port
pairs in a failed job's error text are replaced by ``<address>``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import re
import time
import uuid
from typing import Any, NoReturn

from amqp.exceptions import MessageNacked
from celery import Celery
from flask import Flask, Response, jsonify, render_template, request
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from kitapp.celery_config import PUBLISH_CONFIRM_TIMEOUT_SECONDS
from kitapp.config import Settings
from kitapp.job_store import JobRecord, JobStore, MemoryJobStore, RedisJobStore
from kitapp.public_tasks import ValidationError, validate_job_request

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 2
RECENT_DEFAULT = 20
RECENT_MAX = 100
JSON_MEDIA_TYPE = "application/json"
MAX_JSON_DEPTH = 32  # nested arrays/objects in a request body
MAX_INT_DIGITS = 20  # digits of an integer literal in a request body
OWNER_HEX_CHARS = 16  # a job's owner: this much of the sha256 hex digest of the caller's token
ADDRESS_PLACEHOLDER = "<address>"
BROKER_UNAVAILABLE = "broker unavailable"
QUEUE_FULL = "the job queue is full; retry later"
RESULTS_UNAVAILABLE = "result store unavailable"
UNAUTHORISED = "missing or invalid API token: send the header Authorization: Bearer <token>"


class ServiceUnavailable(Exception):
    """A backing service (broker or result store) did not answer; str() is safe for clients."""


class Unauthorised(Exception):
    """The request carries no valid API token."""


class BadRequestBody(ValueError):
    """The request body is not JSON the API accepts; str() says why (for a 400)."""


def _was_nacked(exc: BaseException) -> bool:
    """Whether the broker refused the message (a nack: the queue is at its max-length policy).
    kombu retries a nacked publish, then raises OperationalError from the MessageNacked."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, MessageNacked):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _unavailable(what: str, exc: BaseException) -> ServiceUnavailable:
    """The exception for clients (``what`` only); the details, with addresses, to the log."""
    log.warning("%s: %s", what, _short(exc))
    return ServiceUnavailable(what)


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


# --- request bodies -------------------------------------------------------------------------

_JSON_STRUCTURE = re.compile(r'\\.|["\[\]{}]')  # an escape pair, a quote or a bracket


def json_nests_deeper_than(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays and objects nest more than ``limit`` deep in a JSON text.

    Brackets inside strings do not count. The count is exact for every valid prefix of the
    text, and json.loads() stops at the first invalid character, so when this says no,
    json.loads() does not recurse deeper than ``limit``.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    in_string = False
    for match in _JSON_STRUCTURE.finditer(text):
        token = match.group()
        if token == '"':
            in_string = not in_string
        elif in_string or len(token) == 2:  # inside a string, or an escape pair
            continue
        elif token in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _parse_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        raise BadRequestBody(f"request body has an integer of more than {MAX_INT_DIGITS} digits")
    return int(literal)


def _parse_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise BadRequestBody("request body has a number too large to represent")
    return value


def _refuse_constant(name: str) -> NoReturn:
    raise BadRequestBody(f"request body is not valid JSON: {name} is not a JSON number")


def parse_json_body(raw: bytes) -> object:
    """Decode a UTF-8 JSON request body within bounds, or raise BadRequestBody.

    Refused: nesting deeper than MAX_JSON_DEPTH (json.loads would hit the recursion limit),
    integers of more than MAX_INT_DIGITS digits (int() refuses very long ones, float() very
    large ones), numbers that overflow a float (1e400) and NaN/Infinity (not JSON).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequestBody("request body is not valid JSON: it is not UTF-8 text") from None
    if json_nests_deeper_than(text, MAX_JSON_DEPTH):
        raise BadRequestBody(f"request body nests arrays/objects deeper than {MAX_JSON_DEPTH}")
    try:
        return json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_refuse_constant,
        )
    except json.JSONDecodeError as exc:
        raise BadRequestBody(f"request body is not valid JSON: {exc}") from None


def is_json_content_type(mimetype: str, params: dict[str, str]) -> bool:
    """application/json, with no charset or UTF-8 (what parse_json_body decodes)."""
    if mimetype != JSON_MEDIA_TYPE:
        return False
    charset = params.get("charset")
    return charset is None or charset.strip().lower() in ("utf-8", "utf8")


# --- API tokens -----------------------------------------------------------------------------


def token_owner(authorization: str | None, token_hashes: tuple[str, ...]) -> str:
    """The owner for a request's Authorization header, or raise Unauthorised.

    With no token hashes the API is open and every caller is the owner "". Otherwise the
    header must be ``Bearer <token>`` with the token's sha256 hex digest in ``token_hashes``;
    the owner is the first OWNER_HEX_CHARS of that digest. Every hash is compared (in
    constant time), and a missing and a wrong token are refused alike.
    """
    if not token_hashes:
        return ""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorised
    digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest().encode()
    matched = False
    for known in token_hashes:
        matched |= hmac.compare_digest(digest, known.lower().encode())
    if not matched:
        raise Unauthorised
    return digest.decode()[:OWNER_HEX_CHARS]


# --- what clients may see -------------------------------------------------------------------

_ADDRESS_TOKEN = re.compile(r"[0-9A-Za-z_.:%\[\]-]+")  # a word, address or host:port
_HOST_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")
_EMBEDDED_IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?(?!\.?\d)")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 5 and int(text) <= 65535


def _is_address(token: str) -> bool:
    if _is_ip(token):  # 10.0.0.5, fe80::1, ::ffff:10.0.0.5, fe80::1%eth0
        return True
    if token.startswith("["):  # [2001:db8::1] or [2001:db8::1]:6379
        inside, bracket, rest = token[1:].partition("]")
        if not bracket or not _is_ip(inside):
            return False
        return not rest or (rest.startswith(":") and _is_port(rest[1:]))
    host, colon, port = token.rpartition(":")
    if not colon or not _is_port(port):
        return False
    if _is_ip(host):  # 10.0.0.5:6379
        return True
    return (  # redis.internal:6379, localhost:5672 (a name: at least one letter)
        _HOST_NAME.fullmatch(host) is not None and any(c.isalpha() for c in host)
    )


def redact_addresses(text: str) -> str:
    """``text`` with every IPv4/IPv6 address and host:port replaced by ADDRESS_PLACEHOLDER.

    For error texts shown to clients: a worker's download or connection error can name the
    addresses it resolved or connected to, which are internal.
    """

    def replace_token(match: re.Match[str]) -> str:
        token = match.group()
        for core in (token, token.rstrip(".:-")):  # "2001:db8::" or "10.0.0.5:" ending a clause
            if core and _is_address(core):
                return ADDRESS_PLACEHOLDER + token[len(core) :]
        return token

    def replace_ipv4(match: re.Match[str]) -> str:  # inside a longer word: 10.0.0.1-10.0.0.9
        return ADDRESS_PLACEHOLDER if _is_ip(match.group().split(":")[0]) else match.group()

    return _EMBEDDED_IPV4.sub(replace_ipv4, _ADDRESS_TOKEN.sub(replace_token, text))


def _client_error_text(result: object) -> str:
    """A failed job's error as clients see it: one line, at most 300 characters, no address."""
    if isinstance(result, BaseException):
        text = str(result).strip()
        line = redact_addresses(text.splitlines()[0]) if text else ""
        name = type(result).__name__
        return f"{name}: {line[:300]}" if line else name
    return redact_addresses(str(result))[:1000]


class JobService:
    """Submits jobs and reads their state; raises ServiceUnavailable when a backend is down."""

    def __init__(self, celery: Celery, settings: Settings, store: JobStore) -> None:
        self.celery = celery
        self.settings = settings
        self.store = store

    def submit(self, task: str, celery_name: str, args: list[object], owner: str = "") -> JobRecord:
        job = JobRecord(id=str(uuid.uuid4()), task=task, submitted_at=time.time(), owner=owner)
        try:
            self.store.record(job)
        except RedisError as exc:
            raise _unavailable(RESULTS_UNAVAILABLE, exc) from exc
        try:
            self.celery.send_task(
                celery_name,
                args=args,
                task_id=job.id,
                confirm_timeout=PUBLISH_CONFIRM_TIMEOUT_SECONDS,
            )
        except Exception as exc:  # kombu OperationalError, socket errors, nacked publish
            log.warning("publishing %s failed: %s", job.id, _short(exc))
            try:
                self.store.forget(job.id, owner)
            except RedisError:
                log.warning("could not remove the record of unpublished job %s", job.id)
            full = _was_nacked(exc)
            raise ServiceUnavailable(QUEUE_FULL if full else BROKER_UNAVAILABLE) from exc
        return job

    def describe(self, job: JobRecord) -> dict[str, Any]:
        try:
            meta = self.celery.backend.get_task_meta(job.id)
        except Exception as exc:  # redis errors, connection errors
            raise _unavailable(RESULTS_UNAVAILABLE, exc) from exc
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
            out["error"] = _client_error_text(result)
        return out

    def lookup(self, job_id: str) -> JobRecord | None:
        try:
            return self.store.get(job_id)
        except RedisError as exc:
            raise _unavailable(RESULTS_UNAVAILABLE, exc) from exc

    def recent(self, limit: int, owner: str = "") -> list[dict[str, Any]]:
        try:
            jobs = self.store.recent(limit, owner)
        except RedisError as exc:
            raise _unavailable(RESULTS_UNAVAILABLE, exc) from exc
        return [self.describe(job) for job in jobs]

    def check_broker(self) -> str | None:
        """None when at least one broker URL accepts a connection, else why not.

        The reason names addresses: for the log only, never for clients.
        """
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
        """None when the result store answers, else why not (for the log only)."""
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

    @flask_app.errorhandler(Unauthorised)
    def unauthorised(exc: Unauthorised) -> tuple[Response, int]:
        response, status = _error(UNAUTHORISED, 401)
        response.headers["WWW-Authenticate"] = "Bearer"
        return response, status

    def caller() -> str:
        """The owner for this request's API token ("" while the API is open)."""
        return token_owner(request.headers.get("Authorization"), settings.api_token_hashes)

    @flask_app.errorhandler(Exception)
    def internal_error(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error("internal server error", 500)

    @flask_app.get("/ping")
    def ping() -> Response:
        return Response("pong", mimetype="text/plain")

    @flask_app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        """Per service "ok" or "unavailable"; why a service is unavailable goes to the log."""
        broker = service.check_broker()
        results = service.check_results() if settings.result_backend_is_redis else broker
        if broker:
            log.warning("health check: %s: %s", BROKER_UNAVAILABLE, broker)
        if results and settings.result_backend_is_redis:
            log.warning("health check: %s: %s", RESULTS_UNAVAILABLE, results)
        body = {
            "broker": "unavailable" if broker else "ok",
            "results": "unavailable" if results else "ok",
        }
        if broker or results:
            body = {"error": "a backing service is unavailable", **body}
            return jsonify(body), 503
        return jsonify(body), 200

    @flask_app.post("/api/jobs")
    def submit_job() -> tuple[Response, int] | Response:
        """Submit a job. Needs a valid API token when tokens are configured."""
        owner = caller()
        # Read first: a body over the size limit is a 413 whatever its type.
        raw = request.get_data(cache=False)
        # Only JSON: an HTML form on another site cannot send it without CORS' consent.
        if not is_json_content_type(request.mimetype, request.mimetype_params):
            given = request.content_type or "none"
            return _error(f"Content-Type must be {JSON_MEDIA_TYPE} (UTF-8), got {given[:100]}", 415)
        try:
            body = parse_json_body(raw)
        except BadRequestBody as exc:
            return _error(str(exc), 400)
        if not isinstance(body, dict):
            return _error("request body must be a JSON object", 400)
        try:
            job_request = validate_job_request(
                body, task_soft_time_limit=settings.task_soft_time_limit
            )
        except ValidationError as exc:
            return _error(str(exc), 422)
        job = service.submit(
            job_request.task, job_request.celery_name, list(job_request.args), owner
        )
        location = f"/api/jobs/{job.id}"
        response = jsonify({"id": job.id, "task": job.task, "state": "PENDING", "url": location})
        response.status_code = 202
        response.headers["Location"] = location
        return response

    @flask_app.get("/api/jobs/<job_id>")
    def get_job(job_id: str) -> tuple[Response, int] | Response:
        """One job's state. Open even with API tokens: the id is an unguessable random UUID
        that only its submitter was given, so knowing it is the permission to poll it."""
        normalised = _parse_job_id(job_id)
        if normalised is None:
            return _error("malformed job id: expected a UUID", 404)
        job = service.lookup(normalised)
        if job is None:
            return _error(f"unknown job id {normalised}", 404)
        return jsonify(service.describe(job))

    @flask_app.get("/api/jobs")
    def list_jobs() -> tuple[Response, int] | Response:
        """The caller's recent jobs: with API tokens, only those submitted with its token."""
        owner = caller()
        raw_limit = request.args.get("limit", str(RECENT_DEFAULT))
        try:
            limit = int(raw_limit)
        except ValueError:
            return _error(f"limit must be an integer between 1 and {RECENT_MAX}", 400)
        if not 1 <= limit <= RECENT_MAX:
            return _error(f"limit must be an integer between 1 and {RECENT_MAX}", 400)
        return jsonify({"jobs": service.recent(limit, owner)})

    @flask_app.get("/")
    def index() -> str:
        return render_template("index.html")

    return flask_app
