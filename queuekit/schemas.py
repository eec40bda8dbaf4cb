"""Payload JSON Schemas: compiling them (never fetching a reference) and caching validators."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from queuekit.errors import InvalidSchemaError
from queuekit.learning import Learned
from queuekit.limits import document_problem

# jsonschema is imported when a schema is first compiled or applied: enqueueing
# jobs of tasks without a schema (and the command line's start-up) never needs it.
if TYPE_CHECKING:
    import referencing
    from jsonschema.protocols import Validator


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
