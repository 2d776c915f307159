"""The tasks that may be started over HTTP, their argument schemas, and request validation.

Pure logic: nothing here imports Celery or reads the environment.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from kitapp.url_policy import MAX_URL_LENGTH

MAX_SLEEP_SECONDS = 600.0  # the ceiling, whatever the task time limits are
MAX_LEDGER_SECONDS = 60.0
SLEEP_MARGIN_SECONDS = 10.0  # a waiting task ends this long before the soft time limit
REQUEST_FIELDS = ("task", "args", "kwargs")


class ValidationError(ValueError):
    """A job request is not acceptable; str(error) says what is wrong."""


@dataclass(frozen=True)
class ArgSpec:
    name: str
    kind: type  # float or str
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    waits: bool = False  # the task waits this many seconds: capped below the soft time limit
    maximum_reason: str = ""  # appended to the "must be <=" message

    def check(self, task: str, value: object) -> object:
        where = f"argument {self.name!r} of {task}"
        if self.kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValidationError(f"{where} must be a number, got {_type_name(value)}")
            try:
                number = float(value)
            except OverflowError:  # an int too large for a float
                raise ValidationError(f"{where} must be a finite number") from None
            if not math.isfinite(number):
                raise ValidationError(f"{where} must be a finite number")
            if self.minimum is not None and number < self.minimum:
                raise ValidationError(f"{where} must be >= {self.minimum:g}, got {number:g}")
            if self.maximum is not None and number > self.maximum:
                reason = f" ({self.maximum_reason})" if self.maximum_reason else ""
                raise ValidationError(
                    f"{where} must be <= {self.maximum:g}, got {number:g}{reason}"
                )
            return number
        if self.kind is str:
            if not isinstance(value, str):
                raise ValidationError(f"{where} must be a string, got {_type_name(value)}")
            if not value:
                raise ValidationError(f"{where} must not be empty")
            if self.max_length is not None and len(value) > self.max_length:
                raise ValidationError(
                    f"{where} must be at most {self.max_length} characters, got {len(value)}"
                )
            return value
        raise TypeError(f"unsupported argument kind {self.kind!r}")  # pragma: no cover


@dataclass(frozen=True)
class TaskSpec:
    public_name: str
    celery_name: str
    params: tuple[ArgSpec, ...] = ()


@dataclass(frozen=True)
class JobRequest:
    task: str  # public name, e.g. "sleep"
    celery_name: str  # registered Celery name, e.g. "kitapp.sleep"
    args: tuple[object, ...] = ()
    kwargs: Mapping[str, object] = field(default_factory=dict)


def _spec(name: str, *params: ArgSpec) -> TaskSpec:
    return TaskSpec(public_name=name, celery_name=f"kitapp.{name}", params=params)


PUBLIC_TASKS: Mapping[str, TaskSpec] = {
    spec.public_name: spec
    for spec in (
        _spec("taskPrintOSName"),
        _spec("taskPrintSystem"),
        _spec("taskPrintSystemRelease"),
        _spec("noop"),
        _spec(
            "sleep", ArgSpec("seconds", float, minimum=0.0, maximum=MAX_SLEEP_SECONDS, waits=True)
        ),
        _spec("download", ArgSpec("url", str, max_length=MAX_URL_LENGTH)),
        _spec(
            "ledger",
            ArgSpec("seconds", float, minimum=0.0, maximum=MAX_LEDGER_SECONDS, waits=True),
        ),
    )
}


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def max_wait_seconds(task_soft_time_limit: float) -> float:
    """The most seconds a waiting task (sleep, ledger) may be given under this soft time limit.

    It ends SLEEP_MARGIN_SECONDS before the limit (a tenth of the limit when that is shorter,
    so that short limits still allow some sleep) and never exceeds MAX_SLEEP_SECONDS: a sleep
    the limit would interrupt is refused up front instead of failing on the worker.
    """
    margin = min(SLEEP_MARGIN_SECONDS, task_soft_time_limit / 10)
    return max(0.0, min(MAX_SLEEP_SECONDS, task_soft_time_limit - margin))


def _time_limited(param: ArgSpec, task_soft_time_limit: float | None) -> ArgSpec:
    if not param.waits or task_soft_time_limit is None:
        return param
    cap = max_wait_seconds(task_soft_time_limit)
    if param.maximum is not None and param.maximum <= cap:
        return param
    return dataclasses.replace(
        param,
        maximum=cap,
        maximum_reason=(
            f"it must end {task_soft_time_limit - cap:g} s before the task soft time limit "
            f"of {task_soft_time_limit:g} s"
        ),
    )


def validate_job_request(body: object, *, task_soft_time_limit: float | None = None) -> JobRequest:
    """Check a decoded JSON request body; return a JobRequest or raise ValidationError.

    Arguments are bound to the task's parameters like a Python call would bind them and are
    returned positionally, in parameter order, with kwargs empty.

    ``task_soft_time_limit`` (seconds; the caller passes the workers' setting) caps the
    seconds of the waiting tasks at ``max_wait_seconds()`` of it; without it only the static
    maximums apply.
    """
    if not isinstance(body, dict):
        raise ValidationError(f"request body must be a JSON object, got {_type_name(body)}")
    unexpected = sorted(str(key) for key in body if key not in REQUEST_FIELDS)
    if unexpected:
        raise ValidationError(
            f"unexpected field(s) in request: {', '.join(unexpected)}; "
            f"allowed: {', '.join(REQUEST_FIELDS)}"
        )
    task = body.get("task")
    if not isinstance(task, str) or not task:
        raise ValidationError("'task' is required and must be a non-empty string")
    spec = PUBLIC_TASKS.get(task)
    if spec is None:
        raise ValidationError(
            f"unknown task {task[:100]!r}; allowed: {', '.join(sorted(PUBLIC_TASKS))}"
        )

    args = body.get("args", [])
    if args is None:
        args = []
    if not isinstance(args, list):
        raise ValidationError(f"'args' must be an array, got {_type_name(args)}")
    kwargs = body.get("kwargs", {})
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise ValidationError(f"'kwargs' must be an object, got {_type_name(kwargs)}")

    params = spec.params
    if len(args) > len(params):
        raise ValidationError(f"{task} takes {len(params)} argument(s) but {len(args)} were given")
    names = [p.name for p in params]
    unknown = sorted(str(key) for key in kwargs if key not in names)
    if unknown:
        raise ValidationError(f"{task} got unexpected keyword argument(s): {', '.join(unknown)}")

    bound: list[object] = []
    for index, param in enumerate(_time_limited(p, task_soft_time_limit) for p in params):
        if index < len(args):
            if param.name in kwargs:
                raise ValidationError(f"{task} got multiple values for argument {param.name!r}")
            value = args[index]
        elif param.name in kwargs:
            value = kwargs[param.name]
        else:
            raise ValidationError(f"{task} is missing required argument {param.name!r}")
        bound.append(param.check(task, value))
    return JobRequest(task=task, celery_name=spec.celery_name, args=tuple(bound), kwargs={})
