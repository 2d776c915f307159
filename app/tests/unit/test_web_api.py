"""The HTTP API (web.create_app) through Flask's test client, with a stand-in for Celery and
the in-memory job store: content type, bounded bodies, the sleep cap, API tokens and error
texts that name no internal address."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from amqp.exceptions import MessageNacked
from flask.testing import FlaskClient
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from kitapp.celery_config import PUBLISH_CONFIRM_TIMEOUT_SECONDS, PUBLISH_RETRY_POLICY
from kitapp.config import Settings
from kitapp.job_store import JobRecord, MemoryJobStore
from kitapp.web import create_app

BROKER_ADDRESS = "10.0.0.5:5672"
RESULTS_ADDRESS = "10.0.0.6:6379"
REDIS_DOWN = f"Error 111 connecting to {RESULTS_ADDRESS}. Connection refused."
BROKER_DOWN = f"[Errno 111] Connection refused connecting to {BROKER_ADDRESS}"
TOKEN_A = "token-of-alice"
TOKEN_B = "token-of-bob"


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "broker_urls": (f"amqp://kitapp:secret@{BROKER_ADDRESS}/kitapp",),
        "result_backend": f"redis://{RESULTS_ADDRESS}/0",
        "max_request_bytes": 65536,
    }
    values.update(overrides)
    return Settings(**values)


class FakeBackend:
    def __init__(self) -> None:
        self.meta: dict[str, dict[str, Any]] = {}
        self.down = False

    def get_task_meta(self, task_id: str) -> dict[str, Any]:
        if self.down:
            raise RedisConnectionError(REDIS_DOWN)
        return self.meta.get(task_id, {"status": "PENDING", "result": None})


class FakeConnection:
    def __init__(self, celery: FakeCelery) -> None:
        self.celery = celery

    def ensure_connection(self, **_: Any) -> None:
        if self.celery.broker_down:
            raise OperationalError(BROKER_DOWN)


@dataclass
class FakeCelery:
    """What web.py uses of a Celery app: send_task, backend, connection_for_write."""

    backend: FakeBackend = field(default_factory=FakeBackend)
    sent: list[tuple[str, list[object], str]] = field(default_factory=list)
    confirm_timeouts: list[float | None] = field(default_factory=list)
    broker_down: bool = False
    queue_full: bool = False

    def send_task(
        self, name: str, args: list[object], task_id: str, confirm_timeout: float | None = None
    ) -> None:
        self.confirm_timeouts.append(confirm_timeout)
        if self.broker_down:
            raise OperationalError(BROKER_DOWN)
        if self.queue_full:  # as kombu raises it once its retries of the nacked publish end
            try:
                raise MessageNacked("basic.nack")
            except MessageNacked as nack:
                raise OperationalError("basic.nack") from nack
        self.sent.append((name, args, task_id))

    @contextmanager
    def connection_for_write(self, url: str, **_: Any) -> Iterator[FakeConnection]:
        yield FakeConnection(self)


class FlakyStore(MemoryJobStore):
    """The in-memory store, but answering like a Redis that is down when told to."""

    def __init__(self) -> None:
        super().__init__(expires=3600)
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise RedisConnectionError(REDIS_DOWN)

    def record(self, job: JobRecord) -> None:
        self._check()
        super().record(job)

    def recent(self, limit: int, owner: str = "") -> list[JobRecord]:
        self._check()
        return super().recent(limit, owner)

    def ping(self) -> None:
        self._check()


@dataclass
class Api:
    client: FlaskClient
    celery: FakeCelery
    store: FlakyStore

    def post(self, body: object, token: str | None = None, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = body if isinstance(body, bytes | str) else json.dumps(body)
        kwargs.setdefault("content_type", "application/json")
        return self.client.post("/api/jobs", data=data, headers=headers, **kwargs)

    def listing(self, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return self.client.get("/api/jobs?limit=100", headers=headers)


def make_api(**settings: Any) -> Api:
    celery = FakeCelery()
    store = FlakyStore()
    app = create_app(make_settings(**settings), celery, store)  # type: ignore[arg-type]
    return Api(client=app.test_client(), celery=celery, store=store)


@pytest.fixture
def api() -> Api:
    return make_api()


@pytest.fixture
def token_api() -> Api:
    return make_api(api_token_hashes=(sha256_hex(TOKEN_A), sha256_hex(TOKEN_B)))


def error_of(response: Any, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) >= {"error"} and body["error"], body
    assert "Traceback" not in response.get_data(as_text=True)
    return str(body["error"])


def test_post_with_json_content_type_is_accepted(api: Api) -> None:
    response = api.post({"task": "noop"})
    assert response.status_code == 202, response.get_data(as_text=True)
    assert api.celery.sent == [("kitapp.noop", [], response.get_json()["id"])]


def test_post_with_json_content_type_and_utf8_charset_is_accepted(api: Api) -> None:
    response = api.post({"task": "noop"}, content_type="application/json; charset=utf-8")
    assert response.status_code == 202, response.get_data(as_text=True)


# --- 1. JSON content type required ----------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
    ],
)
def test_post_with_text_plain_body_is_refused_with_415(api: Api, content_type: str) -> None:
    # What an HTML form on another site can send (and a JSON body in a charset not decoded).
    response = api.post('{"task": "noop"}', content_type=content_type)
    assert "application/json" in error_of(response, 415)
    assert api.celery.sent == []


def test_post_without_content_type_is_refused_with_415(api: Api) -> None:
    response = api.client.post("/api/jobs", data=b'{"task": "noop"}')
    assert response.request.headers.get("Content-Type") is None
    assert "Content-Type must be application/json" in error_of(response, 415)
    assert api.celery.sent == []


def test_body_over_the_size_limit_is_413_whatever_its_content_type() -> None:
    api = make_api(max_request_bytes=100)
    response = api.client.post("/api/jobs", data=b"x" * 101)
    assert "larger than the limit of 100 bytes" in error_of(response, 413)


# --- 2. Bounded input: 4xx, never 500 -------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '{"task": "sleep", "args": [' + "9" * 400 + "]}",
        '{"task": "noop", "kwargs": {"x": -' + "1" * 400 + "}}",
        '{"task": "sleep", "args": [' + "9" * 5000 + "]}",  # over Python's int() digit limit
        '{"task": "noop", "extra": [[' + "1" * 21 + "]]}",
    ],
    ids=["400-digit-arg", "400-digit-negative-kwarg", "5000-digits", "21-digits-nested"],
)
def test_huge_integer_anywhere_in_the_body_is_400(api: Api, body: str) -> None:
    assert "more than 20 digits" in error_of(api.post(body), 400)


def test_twenty_digit_integer_is_parsed_and_validated(api: Api) -> None:
    error = error_of(api.post('{"task": "sleep", "args": [' + "9" * 20 + "]}"), 422)
    assert "must be <=" in error


@pytest.mark.parametrize(
    "body",
    [
        '{"task": "sleep", "args": [1e400]}',
        '{"task": "noop", "kwargs": {"x": -1e400}}',
        '{"task": "sleep", "args": [' + "9" * 400 + ".5]}",
    ],
)
def test_number_overflowing_a_float_is_400(api: Api, body: str) -> None:
    assert "too large" in error_of(api.post(body), 400)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_as_not_json(api: Api, constant: str) -> None:
    body = '{"task": "sleep", "args": [' + constant + "]}"
    assert f"{constant} is not a JSON number" in error_of(api.post(body), 400)


@pytest.mark.parametrize("opener", ["[", '{"a": '])
def test_deeply_nested_body_is_400_not_a_recursion_error(api: Api, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    depth = 5000  # far beyond Python's recursion limit, inside the 64 KiB size limit
    body = '{"task": "noop", "extra": ' + opener * depth + "1" + closer * depth + "}"
    assert "deeper than 32" in error_of(api.post(body), 400)


def test_nesting_up_to_the_limit_is_parsed(api: Api) -> None:
    body = '{"task": "noop", "extra": ' + "[" * 31 + "]" * 31 + "}"
    # Parsed (depth 32: the object and 31 arrays); then refused by validation, not by parsing.
    assert "unexpected field(s) in request: extra" in error_of(api.post(body), 422)


def test_brackets_inside_strings_do_not_count_as_nesting(api: Api) -> None:
    body = json.dumps({"task": "download", "args": ["http://example.org/" + "[{" * 500]})
    assert api.post(body).status_code == 202


def test_body_that_is_not_utf8_is_400(api: Api) -> None:
    assert "not valid JSON" in error_of(api.post(b"\xff\xfe{}"), 400)


# --- 3. sleep capped below the task soft time limit -----------------------------------------


def test_sleep_at_the_soft_time_limit_is_refused_with_422(api: Api) -> None:
    error = error_of(api.post({"task": "sleep", "args": [300]}), 422)
    assert "argument 'seconds' of sleep must be <= 290, got 300" in error
    assert "soft time limit of 300 s" in error
    assert api.celery.sent == []


def test_sleep_below_the_soft_time_limit_margin_is_accepted(api: Api) -> None:
    assert api.post({"task": "sleep", "args": [290]}).status_code == 202


def test_sleep_cap_follows_the_configured_soft_time_limit() -> None:
    api = make_api(task_soft_time_limit=60, task_time_limit=90)
    assert api.post({"task": "sleep", "args": [50]}).status_code == 202
    assert "must be <= 54" in error_of(api.post({"task": "sleep", "args": [55]}), 422)


def test_sleep_cap_never_exceeds_600_seconds_with_a_long_soft_time_limit() -> None:
    api = make_api(task_soft_time_limit=3600, task_time_limit=3700)
    assert api.post({"task": "sleep", "args": [600]}).status_code == 202
    assert "must be <= 600" in error_of(api.post({"task": "sleep", "args": [601]}), 422)


# --- 4. Optional API tokens -----------------------------------------------------------------


def test_without_token_hashes_the_api_stays_open(api: Api) -> None:
    job = api.post({"task": "noop"}).get_json()
    assert [j["id"] for j in api.listing().get_json()["jobs"]] == [job["id"]]
    # A token sent to an open API is ignored: the caller still sees the open jobs.
    assert [j["id"] for j in api.listing(token="anything").get_json()["jobs"]] == [job["id"]]
    assert api.store.get(job["id"]).owner == ""  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", TOKEN_A],
    ids=["missing", "empty", "scheme-only", "scheme-and-space", "basic", "no-scheme"],
)
def test_post_without_a_bearer_token_is_401(token_api: Api, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = token_api.post({"task": "noop"}, headers=headers)
    assert "missing or invalid API token" in error_of(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert token_api.celery.sent == []


def test_wrong_token_gets_the_same_401_as_a_missing_one(token_api: Api) -> None:
    missing = token_api.post({"task": "noop"})
    wrong = token_api.post({"task": "noop"}, token="not-a-valid-token")
    hash_as_token = token_api.post({"task": "noop"}, token=sha256_hex(TOKEN_A))
    for response in (wrong, hash_as_token):
        assert response.status_code == 401
        assert response.get_json() == missing.get_json()
        assert response.headers["WWW-Authenticate"] == missing.headers["WWW-Authenticate"]
    assert token_api.celery.sent == []


def test_listing_without_a_valid_token_is_401(token_api: Api) -> None:
    for response in (token_api.listing(), token_api.listing(token="wrong")):
        assert "missing or invalid API token" in error_of(response, 401)
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_post_with_a_valid_token_is_accepted(token_api: Api) -> None:
    response = token_api.post({"task": "noop"}, token=TOKEN_B)
    assert response.status_code == 202, response.get_data(as_text=True)
    assert token_api.celery.sent[0][0] == "kitapp.noop"


def test_bearer_scheme_is_case_insensitive(token_api: Api) -> None:
    response = token_api.post({"task": "noop"}, headers={"Authorization": f"bearer {TOKEN_A}"})
    assert response.status_code == 202


def test_token_is_checked_before_the_body(token_api: Api) -> None:
    response = token_api.client.post("/api/jobs", data=b"not json", content_type="text/plain")
    assert response.status_code == 401


def test_listing_shows_only_jobs_of_the_callers_token(token_api: Api) -> None:
    alice = [token_api.post({"task": "noop"}, token=TOKEN_A).get_json()["id"] for _ in range(2)]
    bob = token_api.post({"task": "noop"}, token=TOKEN_B).get_json()["id"]
    listed_a = [j["id"] for j in token_api.listing(token=TOKEN_A).get_json()["jobs"]]
    listed_b = [j["id"] for j in token_api.listing(token=TOKEN_B).get_json()["jobs"]]
    assert listed_a == list(reversed(alice))
    assert listed_b == [bob]
    owner_a = sha256_hex(TOKEN_A)[:16]
    assert {token_api.store.get(i).owner for i in alice} == {owner_a}  # type: ignore[union-attr]


def test_polling_one_job_needs_no_token(token_api: Api) -> None:
    job_id = token_api.post({"task": "noop"}, token=TOKEN_A).get_json()["id"]
    response = token_api.client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200
    assert response.get_json()["id"] == job_id


def test_html_page_and_health_need_no_token(token_api: Api) -> None:
    assert token_api.client.get("/").status_code == 200
    assert token_api.client.get("/healthz").status_code == 200
    assert token_api.client.get("/ping").status_code == 200


# --- 5. Error texts name no internal address ------------------------------------------------


def assert_no_address(text: str) -> None:
    for needle in ("10.0.0.5", "10.0.0.6", "5672", "6379", "Errno", "Error 111"):
        assert needle not in text, text


def test_result_store_down_on_submit_gives_a_generic_503(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    api.store.down = True
    with caplog.at_level(logging.WARNING, logger="kitapp.web"):
        response = api.post({"task": "noop"})
    assert error_of(response, 503) == "result store unavailable"
    assert_no_address(response.get_data(as_text=True))
    assert RESULTS_ADDRESS in caplog.text  # the details go to the log


def test_full_queue_on_submit_gives_503_saying_so_and_keeps_no_record(api: Api) -> None:
    api.celery.queue_full = True
    response = api.post({"task": "noop"})
    assert error_of(response, 503) == "the job queue is full; retry later"
    assert api.store.recent(10) == []


def test_a_submission_waits_a_bounded_time_for_the_brokers_confirm(api: Api) -> None:
    """An unbounded wait held the request for as long as a broker cut off from its cluster took
    to notice (the partition fault scenario); kombu's retry then publishes on a new connection."""
    assert api.post({"task": "noop"}).status_code == 202
    assert api.celery.confirm_timeouts == [PUBLISH_CONFIRM_TIMEOUT_SECONDS]
    # Every attempt waiting its full confirm timeout, plus the retry policy's pauses: still an
    # answer (503) before a client's 15 s read timeout.
    attempts = int(PUBLISH_RETRY_POLICY["max_retries"]) + 1
    step, start, most = (
        PUBLISH_RETRY_POLICY[k] for k in ("interval_step", "interval_start", "interval_max")
    )
    pauses = sum(min(start + i * step, most) for i in range(attempts - 1))
    assert attempts * PUBLISH_CONFIRM_TIMEOUT_SECONDS + pauses < 12


def test_broker_down_on_submit_gives_a_generic_503(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    api.celery.broker_down = True
    with caplog.at_level(logging.WARNING, logger="kitapp.web"):
        response = api.post({"task": "noop"})
    assert error_of(response, 503) == "broker unavailable"
    assert_no_address(response.get_data(as_text=True))
    assert BROKER_ADDRESS in caplog.text
    assert api.store.recent(10) == []  # the unpublished job's record is removed


def test_result_store_down_on_poll_and_listing_gives_a_generic_503(api: Api) -> None:
    job_id = api.post({"task": "noop"}).get_json()["id"]
    api.celery.backend.down = True
    poll = api.client.get(f"/api/jobs/{job_id}")
    assert error_of(poll, 503) == "result store unavailable"
    assert_no_address(poll.get_data(as_text=True))
    api.store.down = True
    listing = api.listing()
    assert error_of(listing, 503) == "result store unavailable"
    assert_no_address(listing.get_data(as_text=True))


def test_healthz_says_ok_when_both_services_answer(api: Api) -> None:
    response = api.client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"broker": "ok", "results": "ok"}


def test_healthz_body_names_no_address_when_services_are_down(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    api.celery.broker_down = True
    api.store.down = True
    with caplog.at_level(logging.WARNING, logger="kitapp.web"):
        response = api.client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {
        "error": "a backing service is unavailable",
        "broker": "unavailable",
        "results": "unavailable",
    }
    assert BROKER_ADDRESS in caplog.text and RESULTS_ADDRESS in caplog.text


def test_healthz_with_only_the_result_store_down(api: Api) -> None:
    api.store.down = True
    response = api.client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["broker"] == "ok"
    assert response.get_json()["results"] == "unavailable"


def test_failed_job_error_names_no_address(api: Api) -> None:
    job_id = api.post({"task": "download", "args": ["http://intranet.example/x"]}).get_json()["id"]
    api.celery.backend.meta[job_id] = {
        "status": "FAILURE",
        "result": ConnectionError(
            "HTTPConnectionPool(host='10.0.0.9', port=80): Max retries exceeded "
            "(Failed to establish a new connection: [Errno 111] to 10.0.0.9:80 / [fd00::9]:80)"
        ),
        "date_done": None,
    }
    error = api.client.get(f"/api/jobs/{job_id}").get_json()["error"]
    assert error.startswith("ConnectionError: HTTPConnectionPool(host='<address>', port=80)")
    assert "10.0.0.9" not in error and "fd00::9" not in error
    assert "to <address> / <address>)" in error
    listed = api.listing().get_json()["jobs"][0]["error"]
    assert listed == error


def test_failed_job_error_without_an_address_is_unchanged(api: Api) -> None:
    job_id = api.post({"task": "download", "args": ["file:///etc/passwd"]}).get_json()["id"]

    class DownloadError(Exception):
        pass

    api.celery.backend.meta[job_id] = {
        "status": "FAILURE",
        "result": DownloadError("URL scheme 'file' is not allowed; use http or https"),
    }
    error = api.client.get(f"/api/jobs/{job_id}").get_json()["error"]
    assert error == "DownloadError: URL scheme 'file' is not allowed; use http or https"
