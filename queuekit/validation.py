"""Argument checks and JSON Schema payload validation, done before any statement runs."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import referencing
import referencing.exceptions
import referencing.jsonschema
from jsonschema import exceptions as jsonschema_exceptions
from jsonschema import validators
from jsonschema.protocols import Validator

from queuekit.durations import check_optional_time
from queuekit.errors import (
    InvalidArgumentError,
    InvalidSchemaError,
    InvalidWorkerIdError,
    JobKeyError,
    PayloadValidationError,
)
from queuekit.models import NAME_LENGTH
from queuekit.types import JOB_KEY_MODES, JobSpec


def check_name(value: object, *, name: str, optional: bool = False) -> str | None:
    """A task identifier, queue name, key or flag: a non-empty string of at most 255 characters."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{name} must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidArgumentError(f"{name} must not be empty")
    if len(value) > NAME_LENGTH:
        raise InvalidArgumentError(f"{name} must be at most {NAME_LENGTH} characters")
    if "\x00" in value:
        raise InvalidArgumentError(f"{name} must not contain NUL characters")
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


def contains_nul(value: object) -> bool:
    """Whether a JSON value holds a NUL character in any string or key.

    PostgreSQL cannot store NUL in text or JSON, so queuekit refuses it on
    every dialect alike instead of failing there with a driver error.
    """
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(contains_nul(item) for item in value)
    return False


def payload_json(task_identifier: str, payload: object) -> dict[str, Any]:
    """Return the payload as a JSON object, refusing what JSON cannot carry."""
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
    try:
        text = json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise PayloadValidationError(
            task_identifier, [{"path": "$", "message": f"not JSON-serialisable: {error}"}], payload
        ) from None
    decoded: dict[str, Any] = json.loads(text)
    if contains_nul(decoded):
        raise PayloadValidationError(
            task_identifier,
            [{"path": "$", "message": "contains a NUL character, which cannot be stored"}],
            payload,
        )
    return decoded


@dataclass(frozen=True)
class NewJob:
    """A job request whose arguments were checked; ``payload`` is plain JSON."""

    task_identifier: str
    payload: dict[str, Any]
    queue_name: str | None
    run_at: datetime | None
    priority: int
    max_attempts: int
    job_key: str | None
    job_key_mode: str | None
    flags: tuple[str, ...]
    rate_limit_key: str | None
    #: The enqueuer's trace context, set by tracing (:mod:`queuekit.instrumentation`).
    trace_context: dict[str, str] | None = None


def check_job_spec(spec: JobSpec) -> NewJob:
    """Check every argument of one job request (not yet its schema)."""
    task_identifier = check_required_name(spec.task_identifier, name="task_identifier")
    job_key = check_name(spec.job_key, name="job_key", optional=True)
    mode = spec.job_key_mode
    if mode is not None:
        if not isinstance(mode, str):
            raise JobKeyError(f"Unknown job_key_mode: {mode!r}")
        mode = mode.replace("-", "_")
        if mode not in JOB_KEY_MODES:
            raise JobKeyError(
                f"Unknown job_key_mode: {mode}; use one of {', '.join(JOB_KEY_MODES)}"
            )
        if job_key is None:
            raise JobKeyError("job-key is required when job-key-mode is set")
    elif job_key is not None:
        mode = "replace"
    return NewJob(
        task_identifier=task_identifier,
        payload=payload_json(task_identifier, spec.payload),
        queue_name=check_name(spec.queue_name, name="queue_name", optional=True),
        run_at=check_optional_time(spec.run_at, name="run_at"),
        priority=check_int(spec.priority, name="priority"),
        max_attempts=check_int(spec.max_attempts, name="max_attempts", minimum=1),
        job_key=job_key,
        job_key_mode=mode,
        flags=check_flags(spec.flags),
        rate_limit_key=check_name(spec.rate_limit_key, name="rate_limit_key", optional=True),
    )


def compile_schema(task_identifier: str, schema: object) -> Validator:
    """Check a schema against its meta-schema and return a reusable validator."""
    if not isinstance(schema, Mapping):
        raise InvalidSchemaError(
            f"schema for {task_identifier!r} must be a JSON object (dict), "
            f"not {type(schema).__name__}"
        )
    try:
        json.dumps(schema, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidSchemaError(f"schema for {task_identifier!r} is not JSON: {error}") from None
    if contains_nul(schema):
        raise InvalidSchemaError(f"schema for {task_identifier!r} contains a NUL character")
    cls = validators.validator_for(schema)
    try:
        cls.check_schema(dict(schema))
    except jsonschema_exceptions.SchemaError as error:
        raise InvalidSchemaError(
            f"schema for {task_identifier!r} is not a valid JSON Schema: {error.message}"
        ) from None
    _check_references(task_identifier, schema, cls)
    validator: Validator = cls(dict(schema))
    return validator


#: Keywords whose values are data, not subschemas: a "$ref" inside them is no reference.
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})


def _references(node: object, *, root: bool = True) -> tuple[list[str], bool]:
    """Every ``$ref`` in a schema, and whether a nested ``$id`` moves their base."""
    refs: list[str] = []
    nested_id = False
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                refs.append(value)
            elif key == "$id" and not root:
                nested_id = True
            elif key not in _DATA_KEYWORDS:
                found, moved = _references(value, root=False)
                refs += found
                nested_id = nested_id or moved
    elif isinstance(node, list):
        for item in node:
            found, moved = _references(item, root=False)
            refs += found
            nested_id = nested_id or moved
    return refs, nested_id


def _check_references(task_identifier: str, schema: Mapping[str, Any], cls: Any) -> None:
    """Refuse a schema whose ``$ref`` points nowhere (validation would fail on every enqueue).

    References resolve within the schema document only; nothing is fetched.
    """
    refs, nested_id = _references(schema)
    if not refs or nested_id:
        return
    specification = referencing.jsonschema.specification_with(cls.META_SCHEMA["$schema"])
    resource = specification.create_resource(dict(schema))
    base = resource.id() or "urn:queuekit:payload-schema"
    resolver = referencing.Registry().with_resource(base, resource).resolver(base_uri=base)
    for ref in refs:
        try:
            resolver.lookup(ref)
        except referencing.exceptions.Unresolvable:
            raise InvalidSchemaError(
                f"schema for {task_identifier!r} refers to {ref!r}, which it does not contain; "
                "put referenced schemas under $defs in the same document"
            ) from None


def schema_errors(validator: Validator, payload: dict[str, Any]) -> list[dict[str, str]]:
    """Every violation of the schema, as ``{"path", "message"}`` in a stable order."""
    try:
        found = sorted(validator.iter_errors(payload), key=lambda e: (e.json_path, e.message))
    except referencing.exceptions.Unresolvable as error:
        raise InvalidSchemaError(
            f"the stored payload schema cannot be applied: {error}; "
            "fix it with register_task(task_identifier, schema=...)"
        ) from None
    return [{"path": error.json_path, "message": error.message} for error in found]


@dataclass
class _CachedSchema:
    version: int
    validator: Validator | None
    fetched_at: float


SchemaRow = tuple[int, dict[str, Any] | None]


class SchemaCache:
    """Compiled payload validators per task identifier, refreshed after ``ttl`` seconds.

    Validators are compiled once per schema version. Identifiers whose schema
    was changed in a transaction that has not ended yet are never cached, so
    the cache never holds an uncommitted schema.
    """

    def __init__(self, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        self._entries: dict[str, _CachedSchema] = {}
        self._pending: dict[str, int] = {}
        self._lock = threading.Lock()

    def validators_for(
        self,
        identifiers: Iterable[str],
        fetch: Callable[[Sequence[str]], Mapping[str, SchemaRow]],
    ) -> dict[str, Validator | None]:
        """Validators for each identifier, fetching the stale or unknown ones in one call."""
        wanted = set(identifiers)
        now = time.monotonic()
        result: dict[str, Validator | None] = {}
        with self._lock:
            for identifier in wanted:
                entry = self._entries.get(identifier)
                if (
                    entry is not None
                    and identifier not in self._pending
                    and now - entry.fetched_at < self._ttl
                ):
                    result[identifier] = entry.validator
        missing = sorted(wanted - result.keys())
        if missing:
            rows = fetch(missing)
            for identifier in missing:
                version, schema = rows.get(identifier, (0, None))
                result[identifier] = self._compiled(identifier, version, schema, now)
        return result

    def _compiled(
        self, identifier: str, version: int, schema: dict[str, Any] | None, now: float
    ) -> Validator | None:
        with self._lock:
            entry = self._entries.get(identifier)
            if entry is not None and entry.version == version:
                validator = entry.validator
            else:
                validator = None if schema is None else compile_schema(identifier, schema)
            if identifier not in self._pending:
                self._entries[identifier] = _CachedSchema(version, validator, now)
            return validator

    def store(self, identifier: str, version: int, validator: Validator | None) -> None:
        """Remember a committed schema."""
        with self._lock:
            self._entries[identifier] = _CachedSchema(version, validator, time.monotonic())

    def begin_pending(self, identifier: str) -> None:
        """A schema change for ``identifier`` is in an open transaction: stop caching it."""
        with self._lock:
            self._pending[identifier] = self._pending.get(identifier, 0) + 1
            self._entries.pop(identifier, None)

    def end_pending(self, identifier: str) -> None:
        """That transaction ended (either way): the next lookup reads the database."""
        with self._lock:
            count = self._pending.get(identifier, 0) - 1
            if count <= 0:
                self._pending.pop(identifier, None)
            else:
                self._pending[identifier] = count
            self._entries.pop(identifier, None)
