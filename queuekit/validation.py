"""Argument checks and JSON Schema payload validation, done before any statement runs."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from queuekit.durations import check_optional_time
from queuekit.errors import (
    InvalidArgumentError,
    InvalidSchemaError,
    InvalidWorkerIdError,
    JobKeyError,
    PayloadValidationError,
)
from queuekit.ids import uuid7
from queuekit.learning import Learned
from queuekit.limits import document_problem, size_problem, structure_problem, text_problem
from queuekit.models import NAME_LENGTH
from queuekit.types import JOB_KEY_MODES, JobKeyMode, JobSpec

# jsonschema is imported when a schema is first compiled or applied: enqueueing
# jobs of tasks without a schema (and the command line's start-up) never needs it.
if TYPE_CHECKING:
    import referencing
    from jsonschema.protocols import Validator


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


def compile_schema(task_identifier: str, schema: object, *, formats: bool = True) -> Validator:
    """Check a schema against its meta-schema and return a reusable validator.

    With ``formats`` the validator enforces ``format`` keywords (``email``,
    ``date``, ``uuid``...) with the checkers jsonschema has; JSON Schema
    itself only annotates them unless asked.
    """
    if not isinstance(schema, Mapping):
        raise InvalidSchemaError(
            f"schema for {task_identifier!r} must be a JSON object (dict), "
            f"not {type(schema).__name__}"
        )
    problem = document_problem(schema)
    if problem is not None:
        path, message = problem
        raise InvalidSchemaError(
            f"schema for {task_identifier!r} cannot be stored: {path} {message}"
        )
    if not isinstance(schema.get("$schema", ""), str):
        raise InvalidSchemaError(
            f"schema for {task_identifier!r}: $schema must be a meta-schema URI string"
        )
    from jsonschema import exceptions as jsonschema_exceptions
    from jsonschema import validators

    cls = validators.validator_for(schema)
    try:
        cls.check_schema(dict(schema))
    except jsonschema_exceptions.SchemaError as error:
        raise InvalidSchemaError(
            f"schema for {task_identifier!r} is not a valid JSON Schema: {error.message}"
        ) from None
    registry = _local_registry()
    _check_references(task_identifier, schema, cls, registry)
    checker = cls.FORMAT_CHECKER if formats else None
    validator: Validator = cls(dict(schema), registry=registry, format_checker=checker)
    return validator


def _refuse_retrieval(uri: str) -> referencing.Resource[Any]:
    """Never fetch a referenced document: validation touches no network and no file."""
    import referencing.exceptions

    raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]


def _local_registry() -> referencing.Registry[Any]:
    """A registry that knows only what a schema document itself contains.

    jsonschema's default registry downloads unknown ``$ref`` URLs (with no
    timeout), so a stored schema could make every enqueue hang on a remote
    server; this one raises instead.
    """
    import referencing

    # referencing's classes are attrs classes, whose fields mypy cannot see.
    return referencing.Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]


#: Keywords whose values are data, not subschemas: a "$ref" inside them is no reference.
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})
#: Keywords that refer to another (sub)schema by URI.
_REFERENCE_KEYWORDS = frozenset({"$ref", "$dynamicRef", "$recursiveRef"})


def _references(
    node: object, base: str, specification: referencing.Specification[Any]
) -> list[tuple[str, str]]:
    """Every reference in a schema, with the base URI it resolves against.

    A nested ``$id`` moves the base for everything below it, as it does for
    the validator.
    """
    found: list[tuple[str, str]] = []
    if isinstance(node, Mapping):
        identifier = specification.id_of(node)
        if isinstance(identifier, str):
            base = urljoin(base, identifier)
        for key, value in node.items():
            if key in _REFERENCE_KEYWORDS and isinstance(value, str):
                found.append((base, value))
            elif key not in _DATA_KEYWORDS:
                found += _references(value, base, specification)
    elif isinstance(node, list):
        for item in node:
            found += _references(item, base, specification)
    return found


def _check_references(
    task_identifier: str,
    schema: Mapping[str, Any],
    cls: Any,
    registry: referencing.Registry[Any],
) -> None:
    """Refuse a schema with a reference that does not resolve within the document.

    Such a schema would fail on every enqueue (nothing is ever fetched, see
    :func:`_local_registry`), so it is refused when it is registered.
    """
    import referencing.jsonschema

    specification = referencing.jsonschema.specification_with(cls.META_SCHEMA["$schema"])
    resource = specification.create_resource(dict(schema))
    root = resource.id() or "urn:queuekit:payload-schema"
    crawled = registry.with_resource(root, resource).crawl()
    for base, ref in _references(schema, root, specification):
        try:
            crawled.resolver(base_uri=base).lookup(ref)
        except referencing.exceptions.Unresolvable:
            raise InvalidSchemaError(
                f"schema for {task_identifier!r} refers to {ref!r}, which it does not contain; "
                "nothing is fetched, so put referenced schemas under $defs in the same document"
            ) from None


def schema_errors(validator: Validator, payload: dict[str, Any]) -> list[dict[str, str]]:
    """Every violation of the schema, as ``{"path", "message"}`` in a stable order."""
    import referencing.exceptions

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

    def __init__(self, ttl_seconds: float, *, formats: bool = True) -> None:
        self._ttl = ttl_seconds
        self._formats = formats
        self._entries: dict[str, _CachedSchema] = {}
        self._pending: dict[str, int] = {}
        self._lock = threading.Lock()

    def validators_for(
        self,
        identifiers: Iterable[str],
        fetch: Callable[[Sequence[str]], Mapping[str, SchemaRow]],
        learning: Callable[[], dict[str, Any]],
        learned: Learned | None = None,
    ) -> dict[str, Validator | None]:
        """Validators for each identifier, fetching the stale or unknown ones in one call.

        What the current transaction fetched goes to ``learning()`` (its
        facts, see :mod:`queuekit.learning`), which :meth:`keep` receives once
        it commits; ``learned`` holds what it fetched before.
        """
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
        if learned is not None:
            for identifier in wanted - result.keys():
                if identifier in learned.schemas and identifier not in self._pending:
                    result[identifier] = learned.schemas[identifier].validator
        missing = sorted(wanted - result.keys())
        if missing:
            rows = fetch(missing)
            fetched = learning()
            for identifier in missing:
                version, schema = rows.get(identifier, (0, None))
                entry = _CachedSchema(version, self._compiled(identifier, version, schema), now)
                result[identifier] = entry.validator
                fetched[identifier] = entry
        return result

    def _compiled(
        self, identifier: str, version: int, schema: dict[str, Any] | None
    ) -> Validator | None:
        with self._lock:
            entry = self._entries.get(identifier)
            if entry is not None and entry.version == version:
                return entry.validator
        return None if schema is None else compile_schema(identifier, schema, formats=self._formats)

    def keep(self, fetched: Mapping[str, _CachedSchema]) -> None:
        """Cache validators read in a transaction that committed (unless a change is pending)."""
        with self._lock:
            for identifier, entry in fetched.items():
                if identifier not in self._pending:
                    self._entries[identifier] = entry

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
