"""Argument checks, done before any statement runs (payload schemas: :mod:`queuekit.schemas`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from queuekit.durations import check_optional_time
from queuekit.errors import (
    InvalidArgumentError,
    InvalidWorkerIdError,
    JobKeyError,
    PayloadValidationError,
)
from queuekit.ids import uuid7
from queuekit.limits import size_problem, structure_problem, text_problem
from queuekit.models import NAME_LENGTH
from queuekit.schemas import compile_schema as compile_schema  # re-exported: older import path
from queuekit.schemas import schema_errors as schema_errors  # re-exported: older import path
from queuekit.types import JOB_KEY_MODES, JobKeyMode, JobSpec

V = TypeVar("V")


#: Names that passed :func:`check_name` lately. Bulk enqueues repeat a few task
#: identifiers and queue names thousands of times; a set lookup replaces the scan.
_GOOD_NAMES: set[str] = set()
_GOOD_NAMES_MAX = 4096


def check_name(value: object, *, name: str, optional: bool = False) -> str | None:
    """A task identifier, queue name, key or flag: a non-empty string of at most 255 characters."""
    if value is None and optional:
        return None
    if type(value) is str and value in _GOOD_NAMES:
        return value
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{name} must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidArgumentError(f"{name} must not be empty")
    if len(value) > NAME_LENGTH:
        raise InvalidArgumentError(f"{name} must be at most {NAME_LENGTH} characters")
    problem = text_problem(value)
    if problem is not None:
        raise InvalidArgumentError(f"{name} {problem}")
    if len(_GOOD_NAMES) >= _GOOD_NAMES_MAX:
        _GOOD_NAMES.clear()  # bounded: job keys are mostly unique
    _GOOD_NAMES.add(value)
    return value


def check_required_name(value: object, *, name: str) -> str:
    """Like :func:`check_name` for a value that may not be None."""
    checked = check_name(value, name=name)
    assert checked is not None
    return checked


def check_worker_id(worker_id: object) -> str:
    """Worker ids are non-empty strings of at most 255 characters."""
    if not isinstance(worker_id, str) or not worker_id or len(worker_id) > NAME_LENGTH:
        raise InvalidWorkerIdError(
            f"Invalid worker ID {worker_id!r}: use a non-empty string of at most "
            f"{NAME_LENGTH} characters"
        )
    problem = text_problem(worker_id)
    if problem is not None:
        raise InvalidWorkerIdError(
            f"Invalid worker ID {worker_id!r}: it {problem}; use a non-empty string of at "
            f"most {NAME_LENGTH} characters"
        )
    return worker_id


def check_int(value: object, *, name: str, minimum: int | None = None) -> int:
    """An int (not a bool) no smaller than ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{name} must be an int, not {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise InvalidArgumentError(f"{name} must be >= {minimum}, got {value}")
    if not -(2**31) <= value < 2**31:
        raise InvalidArgumentError(f"{name} must fit in 32 bits, got {value}")
    return value


def check_values_of(
    values: object, kind: type[V], *, name: str, sequence_of: str | None = None
) -> list[V]:
    """``values`` as a list, when it is a sequence (not a string) holding only ``kind``s."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise InvalidArgumentError(f"{name} must be a sequence of {sequence_of or kind.__name__}")
    for value in values:
        if not isinstance(value, kind):
            raise InvalidArgumentError(
                f"{name} must hold {kind.__name__} values, not {type(value).__name__}"
            )
    return list(values)


def check_job_ids(job_ids: object) -> list[uuid.UUID]:
    """Job ids as UUIDs (strings in UUID form accepted); a bare string is refused."""
    if isinstance(job_ids, str | bytes) or not isinstance(job_ids, Sequence | set | frozenset):
        raise InvalidArgumentError("job_ids must be a list of UUIDs")
    result = []
    for value in job_ids:
        if isinstance(value, uuid.UUID):
            result.append(value)
        elif isinstance(value, str):
            try:
                result.append(uuid.UUID(value))
            except ValueError:
                raise InvalidArgumentError(f"{value!r} is not a job id (UUID)") from None
        else:
            raise InvalidArgumentError(f"job ids must be UUIDs, not {type(value).__name__}")
    return result


def check_names(values: object, *, name: str) -> tuple[str, ...] | None:
    """An optional sequence of names; None stays None (no filter), strings are refused."""
    if values is None:
        return None
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidArgumentError(f"{name} must be a list of strings, not {type(values).__name__}")
    return tuple(check_required_name(v, name=f"{name} element") for v in values)


def check_flags(values: object) -> tuple[str, ...]:
    """Job flags: a sequence of names (empty by default)."""
    return check_names(values, name="flags") or ()


def payload_document(task_identifier: str, payload: object) -> tuple[dict[str, Any], str]:
    """The payload as a JSON object, and as the JSON text that measures its size.

    Refuses what JSON or a database cannot carry.
    """
    if payload is None:
        payload = {}
    if not isinstance(payload, Mapping):
        raise PayloadValidationError(
            task_identifier,
            [
                {
                    "path": "$",
                    "message": f"payload must be a JSON object, not {type(payload).__name__}",
                }
            ],
            payload,
        )
    problem = structure_problem(payload)
    if problem is None:
        try:
            text = json.dumps(payload, allow_nan=False)
        except ValueError as error:  # e.g. an int with more digits than Python converts
            problem = "$", f"not JSON-serialisable: {error}"
        else:
            problem = size_problem(text)
    if problem is not None:
        path, message = problem
        raise PayloadValidationError(task_identifier, [{"path": path, "message": message}], payload)
    decoded: dict[str, Any] = json.loads(text)
    return decoded, text


@dataclass(frozen=True)
class NewJob:
    """A job request whose arguments were checked; ``payload`` is plain JSON.

    ``id`` is made here, once per request, so that retrying an enqueue whose
    COMMIT was lost inserts the same ids, and the data can tell whether the
    first try was saved.
    """

    id: uuid.UUID
    task_identifier: str
    payload: dict[str, Any]
    queue_name: str | None
    run_at: datetime | None
    priority: int
    max_attempts: int
    job_key: str | None
    job_key_mode: JobKeyMode | None
    flags: tuple[str, ...]
    rate_limit_key: str | None
    #: Size of the payload as JSON, which bounds how many jobs one statement carries.
    payload_bytes: int = 2
    #: The enqueuer's trace context, set by tracing (:mod:`queuekit.instrumentation`).
    trace_context: dict[str, str] | None = None
    #: ``payload`` as the JSON text validation made of it, reused by bulk loads.
    payload_text: str | None = None


def check_job_spec(spec: JobSpec) -> NewJob:
    """Check every argument of one job request (not yet its schema)."""
    task_identifier = check_required_name(spec.task_identifier, name="task_identifier")
    job_key = check_name(spec.job_key, name="job_key", optional=True)
    given = spec.job_key_mode
    mode: JobKeyMode | None = None
    if given is not None:
        if not isinstance(given, str):
            raise JobKeyError(f"Unknown job_key_mode: {given!r}")
        mode = next((m for m in JOB_KEY_MODES if m == given.replace("-", "_")), None)
        if mode is None:
            raise JobKeyError(
                f"Unknown job_key_mode: {given.replace('-', '_')}; "
                f"use one of {', '.join(JOB_KEY_MODES)}"
            )
        if job_key is None:
            # Worded as the job-key contract has it, then in this API's own names.
            raise JobKeyError(
                "job-key is required when job-key-mode is set: pass job_key with job_key_mode"
            )
    elif job_key is not None:
        mode = "replace"
    payload, payload_text = payload_document(task_identifier, spec.payload)
    return NewJob(
        id=uuid7(),
        task_identifier=task_identifier,
        payload=payload,
        payload_bytes=len(payload_text),
        payload_text=payload_text,
        queue_name=check_name(spec.queue_name, name="queue_name", optional=True),
        run_at=check_optional_time(spec.run_at, name="run_at"),
        priority=check_int(spec.priority, name="priority"),
        max_attempts=check_int(spec.max_attempts, name="max_attempts", minimum=1),
        job_key=job_key,
        job_key_mode=mode,
        flags=check_flags(spec.flags),
        rate_limit_key=check_name(spec.rate_limit_key, name="rate_limit_key", optional=True),
    )
