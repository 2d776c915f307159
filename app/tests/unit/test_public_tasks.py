from __future__ import annotations

import pytest

from kitapp.public_tasks import (
    MAX_LEDGER_SECONDS,
    MAX_SLEEP_SECONDS,
    PUBLIC_TASKS,
    JobRequest,
    ValidationError,
    max_wait_seconds,
    validate_job_request,
)


def test_allow_list() -> None:
    assert set(PUBLIC_TASKS) == {
        "taskPrintOSName",
        "taskPrintSystem",
        "taskPrintSystemRelease",
        "noop",
        "sleep",
        "download",
        "ledger",
    }
    assert all(spec.celery_name == f"kitapp.{name}" for name, spec in PUBLIC_TASKS.items())


@pytest.mark.parametrize("name", ["taskPrintOSName", "taskPrintSystem", "taskPrintSystemRelease"])
def test_tutorial_tasks_take_no_arguments(name: str) -> None:
    assert validate_job_request({"task": name}) == JobRequest(name, f"kitapp.{name}", (), {})
    assert validate_job_request({"task": name, "args": [], "kwargs": {}}).args == ()
    assert validate_job_request({"task": name, "args": None, "kwargs": None}).args == ()
    with pytest.raises(ValidationError, match="takes 0 argument"):
        validate_job_request({"task": name, "args": [1]})


@pytest.mark.parametrize(
    ("body", "args"),
    [
        ({"task": "sleep", "args": [0]}, (0.0,)),
        ({"task": "sleep", "args": [1.5]}, (1.5,)),
        ({"task": "sleep", "args": [600]}, (600.0,)),
        ({"task": "sleep", "kwargs": {"seconds": 2}}, (2.0,)),
        ({"task": "download", "args": ["https://example.org/x"]}, ("https://example.org/x",)),
        (
            {"task": "download", "kwargs": {"url": "http://h/" + "a" * 2000}},
            ("http://h/" + "a" * 2000,),
        ),  # noqa: E501
        ({"task": "noop"}, ()),
    ],
)
def test_valid_requests(body: dict[str, object], args: tuple[object, ...]) -> None:
    request = validate_job_request(body)
    assert request.args == args
    assert request.kwargs == {}
    assert request.celery_name == f"kitapp.{body['task']}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "request body must be a JSON object, got array"),
        ("sleep", "request body must be a JSON object, got string"),
        (None, "request body must be a JSON object, got null"),
        ({}, "'task' is required"),
        ({"task": ""}, "'task' is required"),
        ({"task": 3}, "'task' is required and must be a non-empty string"),
        ({"task": "os.system"}, "unknown task 'os.system'; allowed: download, ledger, noop"),
        ({"task": "kitapp.noop"}, "unknown task 'kitapp.noop'"),
        ({"task": "celery.backend_cleanup"}, "unknown task"),
        ({"task": "noop", "queue": "x"}, "unexpected field(s) in request: queue"),
        ({"task": "noop", "args": {}}, "'args' must be an array, got object"),
        ({"task": "noop", "args": "x"}, "'args' must be an array, got string"),
        ({"task": "noop", "kwargs": []}, "'kwargs' must be an object, got array"),
        ({"task": "noop", "kwargs": {"x": 1}}, "noop got unexpected keyword argument(s): x"),
        ({"task": "sleep"}, "sleep is missing required argument 'seconds'"),
        ({"task": "sleep", "args": [1, 2]}, "sleep takes 1 argument(s) but 2 were given"),
        (
            {"task": "sleep", "args": ["1"]},
            "argument 'seconds' of sleep must be a number, got string",
        ),  # noqa: E501
        ({"task": "sleep", "args": [True]}, "must be a number, got boolean"),
        ({"task": "sleep", "args": [None]}, "must be a number, got null"),
        ({"task": "sleep", "args": [[1]]}, "must be a number, got array"),
        ({"task": "sleep", "args": [-0.1]}, "argument 'seconds' of sleep must be >= 0, got -0.1"),
        (
            {"task": "sleep", "args": [600.5]},
            "argument 'seconds' of sleep must be <= 600, got 600.5",
        ),  # noqa: E501
        ({"task": "sleep", "args": [float("inf")]}, "must be a finite number"),
        ({"task": "sleep", "args": [float("nan")]}, "must be a finite number"),
        (
            {"task": "sleep", "args": [1], "kwargs": {"seconds": 1}},
            "multiple values for argument 'seconds'",
        ),  # noqa: E501
        ({"task": "sleep", "kwargs": {"secs": 1}}, "unexpected keyword argument(s): secs"),
        (
            {"task": "download", "args": [42]},
            "argument 'url' of download must be a string, got integer",
        ),  # noqa: E501
        ({"task": "download", "args": [""]}, "argument 'url' of download must not be empty"),
        ({"task": "download", "args": ["h" * 2049]}, "must be at most 2048 characters, got 2049"),
        ({"task": "download"}, "download is missing required argument 'url'"),
    ],
)
def test_invalid_requests(body: object, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_job_request(body)
    assert message in str(info.value)


def test_unknown_task_name_is_truncated_in_message() -> None:
    with pytest.raises(ValidationError) as info:
        validate_job_request({"task": "x" * 5000})
    assert len(str(info.value)) < 400


@pytest.mark.parametrize(
    ("soft_limit", "cap"),
    [(300, 290.0), (60, 54.0), (10, 9.0), (1, 0.9), (610, 600.0), (3600, MAX_SLEEP_SECONDS)],
)
def test_max_wait_is_below_the_soft_time_limit_and_at_most_600(soft_limit: int, cap: float) -> None:
    assert max_wait_seconds(soft_limit) == pytest.approx(cap)
    assert max_wait_seconds(soft_limit) < soft_limit


def test_sleep_over_the_cap_for_the_soft_time_limit_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValidationError) as info:
        validate_job_request({"task": "sleep", "args": [300]}, task_soft_time_limit=300)
    assert str(info.value) == (
        "argument 'seconds' of sleep must be <= 290, got 300 "
        "(it must end 10 s before the task soft time limit of 300 s)"
    )


def test_sleep_at_the_cap_for_the_soft_time_limit_is_accepted() -> None:
    request = validate_job_request({"task": "sleep", "args": [290]}, task_soft_time_limit=300)
    assert request.args == (290.0,)
    request = validate_job_request(
        {"task": "sleep", "kwargs": {"seconds": 54}}, task_soft_time_limit=60
    )
    assert request.args == (54.0,)


def test_sleep_cap_stays_600_with_a_long_soft_time_limit() -> None:
    assert validate_job_request(
        {"task": "sleep", "args": [600]}, task_soft_time_limit=3600
    ).args == (600.0,)
    with pytest.raises(ValidationError, match=r"must be <= 600, got 601$"):
        validate_job_request({"task": "sleep", "args": [601]}, task_soft_time_limit=3600)


def test_ledger_keeps_its_own_lower_maximum_and_is_capped_by_a_short_soft_limit() -> None:
    ok = validate_job_request(
        {"task": "ledger", "args": [MAX_LEDGER_SECONDS]}, task_soft_time_limit=300
    )
    assert ok.args == (MAX_LEDGER_SECONDS,)
    with pytest.raises(ValidationError, match="must be <= 27, got 28"):
        validate_job_request({"task": "ledger", "args": [28]}, task_soft_time_limit=30)


def test_tasks_without_a_wait_are_not_affected_by_the_soft_time_limit() -> None:
    url = "https://example.org/x"
    request = validate_job_request({"task": "download", "args": [url]}, task_soft_time_limit=1)
    assert request.args == (url,)


@pytest.mark.parametrize("seconds", [10**400, -(10**400)])
def test_integer_too_large_for_a_float_is_a_validation_error(seconds: int) -> None:
    # float(10**400) raises OverflowError; it must come out as a ValidationError (422).
    with pytest.raises(ValidationError, match="must be a finite number"):
        validate_job_request({"task": "sleep", "args": [seconds]})
