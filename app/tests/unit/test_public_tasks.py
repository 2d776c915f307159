from __future__ import annotations

import pytest

from kitapp.public_tasks import PUBLIC_TASKS, JobRequest, ValidationError, validate_job_request


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
