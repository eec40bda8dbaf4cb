"""Bad input: every bad call raises the SPEC §2.3 error and writes nothing.

Argument errors are raised before any statement runs, so a caller's open
transaction stays usable after catching one (PostgreSQL aborts a transaction
on the first failed statement, so this is where leaks would show).
Awkward but valid strings are stored and read back verbatim.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from conformance import WORKER, emptied, snapshot

from queuekit import (
    InvalidArgumentError,
    InvalidSchemaError,
    InvalidWorkerIdError,
    JobError,
    JobKeyError,
    JobManager,
    JobSpec,
    PartialSuccess,
    PayloadValidationError,
    UnknownRateLimitError,
)
from queuekit.durations import parse_duration
from queuekit.types import Job

BAD_WORKER_IDS: list[Any] = ["", None, 42, b"bytes", ["w"], "w" * 256]
BAD_INTERVALS: list[Any] = [
    "5 parsecs",
    "",
    "   ",
    "-1 second",
    "1 second 2",
    "second",
    "1 seconds and 2 minutes",
    "1,5 hours",
    "5ms",
    "5 months",
    "1h 2",
    "P",
    "PT",
    "P1M",
    "P1Y",
    "PT5X",
    "nan seconds",
    -1,
    -0.5,
    math.nan,
    math.inf,
    timedelta(seconds=-1),
    1e20,
    "99999999999 weeks",
    "1000000 weeks",
    timedelta.max,
    True,
    None,
    [1],
]
ZERO_INTERVALS: list[Any] = [0, 0.0, "0 seconds", timedelta(0), "0 minutes 0 seconds"]
AWKWARD = [
    'it\'s "quoted"',
    "semi;colon; DROP TABLE queuekit_jobs; --",
    "ünïcödé ✓ 日本語",
    "emoji 🚀 four bytes",
    "back\\slash % _ wildcard",
    "  spaced  ",
    "x" * 255,
]


@pytest.fixture
def engine(module_engine: sa.Engine) -> sa.Engine:
    """This module's migrated database of the parametrized dialect, emptied for each test."""
    return emptied(module_engine)


def _claimed(manager: JobManager, **options: Any) -> Job:
    manager.add_job("t", {}, **options)
    [job] = manager.get_jobs(WORKER)
    return job


def _raises_and_writes_nothing(
    engine: sa.Engine, error: type[Exception], call: Callable[[], object], match: str | None = None
) -> pytest.ExceptionInfo[Exception]:
    before = snapshot(engine)
    with pytest.raises(error, match=match) as caught:
        call()
    assert snapshot(engine) == before
    return caught


# -- worker ids ------------------------------------------------------------------------------


@pytest.mark.parametrize("worker_id", BAD_WORKER_IDS, ids=repr)
def test_invalid_worker_ids(manager: JobManager, engine: sa.Engine, worker_id: Any) -> None:
    claimed = _claimed(manager)
    calls: list[Callable[[], object]] = [
        lambda: manager.get_jobs(worker_id),
        lambda: manager.complete_jobs(worker_id, [claimed], 1),
        lambda: manager.fail_jobs(worker_id, [JobError(claimed, "x")], 1),
        lambda: manager.report_partial_success(worker_id, claimed, PartialSuccess([], []), 1),
    ]
    for call in calls:
        caught = _raises_and_writes_nothing(engine, InvalidWorkerIdError, call)
        assert "Invalid worker ID" in str(caught.value)
        assert "at most 255 characters" in str(caught.value)


def test_longest_and_awkward_worker_ids_work(manager: JobManager) -> None:
    for worker in ("w" * 255, *AWKWARD):
        job = manager.add_job("t", {"w": worker})
        [claimed] = manager.get_jobs(worker)
        assert claimed.id == job.id and claimed.locked_by == worker
        assert manager.complete_jobs(worker, [claimed], 1) == [claimed]
        assert manager.job_history(job.id)[0].worker_id == worker


# -- numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [-1, -100, 1.5, "3", None, True])
def test_bad_batch_sizes(manager: JobManager, engine: sa.Engine, size: Any) -> None:
    manager.add_job("t", {})
    _raises_and_writes_nothing(
        engine, InvalidArgumentError, lambda: manager.get_jobs(WORKER, batch_size=size)
    )


@pytest.mark.parametrize("capacity", [0, -1, 1.5, "10", None, True, 2**31])
def test_bad_capacities(manager: JobManager, engine: sa.Engine, capacity: Any) -> None:
    _raises_and_writes_nothing(
        engine,
        InvalidArgumentError,
        lambda: manager.register_rate_limit("k", capacity, "1 minute"),
    )
    manager.register_rate_limit("existing", 3, "1 minute")
    _raises_and_writes_nothing(
        engine,
        InvalidArgumentError,
        lambda: manager.register_rate_limit("existing", capacity, "1 minute"),
    )


def test_bad_numbers_in_jobs_and_outcomes(manager: JobManager, engine: sa.Engine) -> None:
    claimed = _claimed(manager)
    for call in (
        lambda: manager.add_job("t", {}, max_attempts=0),
        lambda: manager.add_job("t", {}, max_attempts=-3),
        lambda: manager.add_job("t", {}, priority=1.5),  # type: ignore[arg-type]
        lambda: manager.add_job("t", {}, priority=2**40),
        lambda: manager.complete_jobs(WORKER, [claimed], -1),
        lambda: manager.fail_jobs(WORKER, [JobError(claimed, "x")], -5),
        lambda: manager.report_partial_success(WORKER, claimed, PartialSuccess([], []), 1.5),  # type: ignore[arg-type]
    ):
        _raises_and_writes_nothing(engine, InvalidArgumentError, call)


# -- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize("interval", BAD_INTERVALS, ids=repr)
def test_malformed_intervals(manager: JobManager, engine: sa.Engine, interval: Any) -> None:
    manager.add_job("t", {})
    _raises_and_writes_nothing(
        engine, InvalidArgumentError, lambda: manager.register_rate_limit("k", 1, interval)
    )
    _raises_and_writes_nothing(
        engine,
        InvalidArgumentError,
        lambda: manager.get_jobs(WORKER, history_retention=interval),
    )


@pytest.mark.parametrize("interval", ZERO_INTERVALS, ids=repr)
def test_zero_interval_refused_for_rate_limits(
    manager: JobManager, engine: sa.Engine, interval: Any
) -> None:
    caught = _raises_and_writes_nothing(
        engine, InvalidArgumentError, lambda: manager.register_rate_limit("k", 1, interval)
    )
    assert "greater than zero" in str(caught.value)
    # Zero is a valid retention: the attempt's history row expires at once.
    job = manager.add_job("t", {})
    [claimed] = manager.get_jobs(WORKER, history_retention=interval)
    [record] = manager.job_history(job.id)
    assert record.expires_at == record.started_at == claimed.locked_at


def test_rate_limit_intervals_go_through_the_duration_parser(manager: JobManager) -> None:
    # Each accepted form is pinned in tests/unit/test_durations.py; this checks the wiring.
    assert manager.register_rate_limit("k", 1, "1 hour 30 minutes").interval == timedelta(
        minutes=90
    )
    assert manager.register_rate_limit("k", 1, 0.25).interval == timedelta(milliseconds=250)


@pytest.mark.parametrize(
    ("interval", "message"),
    [
        ("P1M", "years and months have no fixed length"),
        ("5 parsecs", "'90s', '5m', '1h30m'"),
        ("5ms", "ISO 8601 duration (e.g. 'PT5M'"),
    ],
)
def test_duration_errors_name_the_accepted_forms(interval: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=re.escape(message)):
        parse_duration(interval, name="interval")


# -- job keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["upsert", "REPLACE", "", "replace ", 3])
def test_unknown_job_key_mode(manager: JobManager, engine: sa.Engine, mode: Any) -> None:
    caught = _raises_and_writes_nothing(
        engine, JobKeyError, lambda: manager.add_job("t", {}, job_key="k", job_key_mode=mode)
    )
    assert "Unknown job_key_mode" in str(caught.value)
    _raises_and_writes_nothing(
        engine,
        JobKeyError,
        lambda: manager.add_jobs(
            [JobSpec("t", {}), JobSpec("t", {}, job_key="k", job_key_mode=mode)]
        ),
    )


@pytest.mark.parametrize("mode", ["replace", "preserve_run_at", "unsafe_dedupe"])
def test_mode_without_key(manager: JobManager, engine: sa.Engine, mode: str) -> None:
    _raises_and_writes_nothing(
        engine,
        JobKeyError,
        lambda: manager.add_job("t", {}, job_key_mode=mode),
        match="job-key is required when job-key-mode is set",
    )


# -- payloads ---------------------------------------------------------------------------------


class _Opaque:
    pass


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({"tags": {"a", "b"}}, "$.tags"),
        ({"thing": _Opaque()}, "$.thing"),
        ({"value": math.nan}, "$.value"),
        ({"value": math.inf}, "$.value"),
        ({"nested": [1, {"deep": -math.inf}]}, "$.nested[1].deep"),
        ({"when": datetime(2024, 1, 1)}, "$.when"),
        ({"raw": b"bytes"}, "$.raw"),
        ({("tuple", "key"): 1}, "$"),
        ({"big": 10**5000}, "$"),
    ],
    ids=lambda p: type(p).__name__ if isinstance(p, dict) and "big" in p else repr(p)[:40],
)
def test_non_serialisable_payloads(
    manager: JobManager, engine: sa.Engine, payload: Any, path: str
) -> None:
    caught = _raises_and_writes_nothing(
        engine, PayloadValidationError, lambda: manager.add_job("t", payload)
    )
    assert str(caught.value).startswith("Invalid payload")
    assert caught.value.task_identifier == "t"  # type: ignore[attr-defined]
    assert caught.value.payload is payload  # type: ignore[attr-defined]
    assert [e["path"] for e in caught.value.errors] == [path]  # type: ignore[attr-defined]


@pytest.mark.parametrize("payload", [[1, 2], "text", 5, 1.5, True, ("a",)], ids=repr)
def test_payload_must_be_an_object(manager: JobManager, engine: sa.Engine, payload: Any) -> None:
    caught = _raises_and_writes_nothing(
        engine, PayloadValidationError, lambda: manager.add_job("t", payload)
    )
    assert str(caught.value).startswith("Invalid payload")
    assert caught.value.errors[0]["path"] == "$"  # type: ignore[attr-defined]
    assert "JSON object" in caught.value.errors[0]["message"]  # type: ignore[attr-defined]


def test_payload_breaking_its_schema(manager: JobManager, engine: sa.Engine) -> None:
    manager.register_task(
        "email",
        schema={
            "type": "object",
            "properties": {
                "to": {"type": "string", "format": "email"},
                "cc": {"type": "array", "items": {"type": "string"}},
                "n": {"type": "integer", "minimum": 1},
            },
            "required": ["to"],
            "additionalProperties": False,
        },
    )
    caught = _raises_and_writes_nothing(
        engine,
        PayloadValidationError,
        lambda: manager.add_job("email", {"to": 7, "cc": ["ok", 3], "n": 0, "extra": True}),
    )
    error = caught.value
    assert str(error).startswith("Invalid payload")
    assert error.task_identifier == "email"  # type: ignore[attr-defined]
    assert error.payload == {"to": 7, "cc": ["ok", 3], "n": 0, "extra": True}  # type: ignore[attr-defined]
    paths = [e["path"] for e in error.errors]  # type: ignore[attr-defined]
    assert paths == ["$", "$.cc[1]", "$.n", "$.to"]
    assert all(set(e) == {"path", "message"} for e in error.errors)  # type: ignore[attr-defined]
    assert {"path": "$.to", "message": "7 is not of type 'string'"} in error.errors  # type: ignore[attr-defined]
    missing = _raises_and_writes_nothing(
        engine, PayloadValidationError, lambda: manager.add_job("email", {})
    )
    assert missing.value.errors == [  # type: ignore[attr-defined]
        {"path": "$", "message": "'to' is a required property"}
    ]


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "nonsense"},
        {"properties": 5},
        {"required": "to"},
        {"type": "object", "properties": {"n": {"minimum": "one"}}},
        ["not", "an", "object"],
        "string",
        {"enum": {1, 2}},
        {"minimum": math.nan},
    ],
    ids=repr,
)
def test_invalid_schema_is_refused_and_not_stored(
    manager: JobManager, engine: sa.Engine, schema: Any
) -> None:
    _raises_and_writes_nothing(
        engine, InvalidSchemaError, lambda: manager.register_task("t", schema=schema)
    )
    manager.register_task("kept", schema={"type": "object"})
    _raises_and_writes_nothing(
        engine, InvalidSchemaError, lambda: manager.register_task("kept", schema=schema)
    )
    task = manager.get_task("kept")
    assert task is not None and task.payload_schema == {"type": "object"}
    assert manager.add_job("t", {"anything": 1}).payload == {"anything": 1}


def test_unknown_rate_limit_key(manager: JobManager, engine: sa.Engine) -> None:
    manager.register_rate_limit("known", 1, "1 minute")
    caught = _raises_and_writes_nothing(
        engine,
        UnknownRateLimitError,
        lambda: manager.add_jobs(
            [JobSpec("t", {}, rate_limit_key="known"), JobSpec("t", {}, rate_limit_key="nope")]
        ),
    )
    assert "'nope'" in str(caught.value)


# -- times and types ----------------------------------------------------------------------------


def test_naive_and_non_datetime_times(manager: JobManager, engine: sa.Engine) -> None:
    for value in (datetime(2030, 1, 1), datetime.now(), "2030-01-01T00:00:00Z", 1_700_000_000):
        caught = _raises_and_writes_nothing(
            engine,
            InvalidArgumentError,
            lambda: manager.add_job("t", {}, run_at=value),  # noqa: B023
        )
        assert "timezone-aware" in str(caught.value)


@pytest.mark.parametrize("name", ["", None, 5, "x" * 256, b"t", "nul\x00byte"], ids=repr)
def test_bad_names(manager: JobManager, engine: sa.Engine, name: Any) -> None:
    manager.register_rate_limit("k", 1, "1 minute")
    calls: list[Callable[[], object]] = [
        lambda: manager.add_job(name, {}),
        lambda: manager.register_task(name, schema=None),
        lambda: manager.register_rate_limit(name, 1, "1 minute"),
        lambda: manager.get_jobs(WORKER, task_identifiers=[name]),
        lambda: manager.get_jobs(WORKER, forbidden_flags=["ok", name]),
    ]
    if name is not None:
        calls += [
            lambda: manager.add_job("t", {}, queue_name=name),
            lambda: manager.add_job("t", {}, job_key=name),
            lambda: manager.add_job("t", {}, flags=["ok", name]),
            lambda: manager.add_job("t", {}, rate_limit_key=name),
        ]
    for call in calls:
        _raises_and_writes_nothing(engine, InvalidArgumentError, call)


def test_bad_collections_and_sessions(manager: JobManager, engine: sa.Engine) -> None:
    claimed = _claimed(manager)
    for call in (
        lambda: manager.add_jobs("not specs"),  # type: ignore[arg-type]
        lambda: manager.add_jobs([{"task_identifier": "t"}]),  # type: ignore[list-item]
        lambda: manager.add_job("t", {}, flags="single"),
        lambda: manager.get_jobs(WORKER, task_identifiers="t"),
        lambda: manager.complete_jobs(WORKER, claimed, 1),  # type: ignore[arg-type]
        lambda: manager.complete_jobs(WORKER, [claimed.id], 1),  # type: ignore[list-item]
        lambda: manager.fail_jobs(WORKER, [claimed], 1),  # type: ignore[list-item]
        lambda: manager.fail_jobs(WORKER, [JobError(claimed, 42)], 1),  # type: ignore[arg-type]
        lambda: manager.report_partial_success(WORKER, claimed, {"done": []}, 1),  # type: ignore[arg-type]
        lambda: manager.report_partial_success(WORKER, claimed, PartialSuccess("ab", []), 1),
        lambda: manager.report_partial_success(
            WORKER, claimed, PartialSuccess([], [], results={1, 2}), 1
        ),
        lambda: manager.get_job("not-a-uuid"),  # type: ignore[arg-type]
        lambda: manager.job_history(12),  # type: ignore[arg-type]
        lambda: manager.add_job("t", {}, session=engine),  # type: ignore[arg-type]
        lambda: manager.get_jobs(WORKER, session="conn"),  # type: ignore[arg-type]
    ):
        _raises_and_writes_nothing(engine, InvalidArgumentError, call)


# -- the caller's transaction survives -----------------------------------------------------------


def test_caller_transaction_survives_every_bad_call(manager: JobManager, engine: sa.Engine) -> None:
    manager.register_task("strict", schema={"type": "object", "required": ["to"]})
    manager.register_rate_limit("known", 1, "1 minute")
    claimed = _claimed(manager)
    before = snapshot(engine)
    with engine.connect() as conn:
        transaction = conn.begin()
        first = manager.add_job("t", {"step": 1}, session=conn)
        bad_calls: list[tuple[type[Exception], Callable[[], object]]] = [
            (InvalidWorkerIdError, lambda: manager.get_jobs("", session=conn)),
            (InvalidArgumentError, lambda: manager.get_jobs(WORKER, batch_size=-1, session=conn)),
            (
                InvalidArgumentError,
                lambda: manager.register_rate_limit("r", 0, "1 minute", session=conn),
            ),
            (
                InvalidArgumentError,
                lambda: manager.register_rate_limit("r", 1, "5 parsecs", session=conn),
            ),
            (
                JobKeyError,
                lambda: manager.add_job("t", {}, job_key="k", job_key_mode="bad", session=conn),
            ),
            (JobKeyError, lambda: manager.add_job("t", {}, job_key_mode="replace", session=conn)),
            (PayloadValidationError, lambda: manager.add_job("t", {"x": {1}}, session=conn)),
            (PayloadValidationError, lambda: manager.add_job("t", [1], session=conn)),
            (PayloadValidationError, lambda: manager.add_job("strict", {}, session=conn)),
            (
                InvalidSchemaError,
                lambda: manager.register_task("t", schema={"type": 5}, session=conn),
            ),
            (
                UnknownRateLimitError,
                lambda: manager.add_job("t", {}, rate_limit_key="nope", session=conn),
            ),
            (
                InvalidArgumentError,
                lambda: manager.add_job("t", {}, run_at=datetime(2030, 1, 1), session=conn),
            ),
            (
                InvalidWorkerIdError,
                lambda: manager.complete_jobs("x" * 256, [claimed], 1, session=conn),
            ),
        ]
        for error, call in bad_calls:
            with pytest.raises(error):
                call()
        second = manager.add_job("t", {"step": 2}, session=conn)
        assert manager.get_job(first.id, session=conn) is not None
        transaction.commit()
    after = snapshot(engine)
    assert len(after["queuekit_jobs"]) == len(before["queuekit_jobs"]) + 2
    assert manager.get_job(first.id) is not None and manager.get_job(second.id) is not None


# -- awkward strings round-trip verbatim ---------------------------------------------------------


@pytest.mark.parametrize("text", AWKWARD, ids=range(len(AWKWARD)))
def test_awkward_strings_are_stored_verbatim(manager: JobManager, text: str) -> None:
    manager.register_rate_limit(text, 5, "1 minute")
    manager.register_task(text, schema={"type": "object", "required": [text]})
    job = manager.add_job(
        text,
        {text: text, "nested": [text]},
        queue_name=text,
        job_key=text,
        flags=[text, "plain"],
        rate_limit_key=text,
    )
    stored = manager.get_job(job.id)
    assert stored is not None and stored == job
    assert (stored.task_identifier, stored.queue_name, stored.job_key) == (text, text, text)
    assert stored.flags == (text, "plain") and stored.rate_limit_key == text
    assert stored.payload == {text: text, "nested": [text]}
    assert manager.get_rate_limit(text).key == text  # type: ignore[union-attr]
    assert manager.get_task(text).payload_schema == {"type": "object", "required": [text]}  # type: ignore[union-attr]
    assert [q.queue_name for q in manager.list_queues()] == [text]
    # The strings work as filters too.
    assert manager.get_jobs(WORKER, forbidden_flags=[text]) == []
    assert manager.get_jobs(WORKER, task_identifiers=["other"]) == []
    [claimed] = manager.get_jobs(WORKER, task_identifiers=[text], forbidden_flags=["other"])
    assert claimed.id == job.id
    [record] = manager.job_history(job.id)
    assert (record.task_identifier, record.payload) == (text, {text: text, "nested": [text]})
    same = manager.add_job(text, {text: 1}, job_key=text, job_key_mode="unsafe_dedupe")
    assert same.id == job.id


@pytest.mark.parametrize(
    "payload",
    [{"s": "a\x00b"}, {"k\x00": 1}, {"deep": [{"x": "\x00"}]}],
    ids=["value", "key", "nested"],
)
def test_nul_characters_in_payloads(manager: JobManager, engine: sa.Engine, payload: Any) -> None:
    """PostgreSQL cannot store NUL in JSON text, so no dialect accepts it."""
    caught = _raises_and_writes_nothing(
        engine, PayloadValidationError, lambda: manager.add_job("t", payload)
    )
    assert "NUL" in str(caught.value)
    # A literal backslash-u sequence is ordinary text and is kept verbatim.
    assert manager.add_job("t", {"s": "\\u0000"}).payload == {"s": "\\u0000"}


def test_nul_characters_in_partial_success(manager: JobManager, engine: sa.Engine) -> None:
    claimed = _claimed(manager)
    for partial in (
        PartialSuccess(["a\x00"], []),
        PartialSuccess([], [], "step\x00"),
        PartialSuccess([], [], None, {"r": "\x00"}),
    ):
        _raises_and_writes_nothing(
            engine,
            InvalidArgumentError,
            lambda: manager.report_partial_success(WORKER, claimed, partial, 1),  # noqa: B023
        )


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "http://example.invalid/schema.json"},
        {"$ref": "#/$defs/missing"},
        {"properties": {"to": {"$ref": "#/definitions/address"}}, "definitions": {}},
        {"prefixItems": [{"$ref": "other.json"}]},
    ],
    ids=repr,
)
def test_schema_with_dangling_references_is_refused(
    manager: JobManager, engine: sa.Engine, schema: Any
) -> None:
    caught = _raises_and_writes_nothing(
        engine, InvalidSchemaError, lambda: manager.register_task("t", schema=schema)
    )
    assert "$defs" in str(caught.value)


def test_schema_with_local_references_validates(manager: JobManager, engine: sa.Engine) -> None:
    manager.register_task(
        "mail",
        schema={
            "$defs": {"address": {"type": "string", "minLength": 3}},
            "type": "object",
            "properties": {"to": {"$ref": "#/$defs/address"}, "note": {"const": {"$ref": "x"}}},
        },
    )
    assert manager.add_job("mail", {"to": "a@b"}).payload == {"to": "a@b"}
    caught = _raises_and_writes_nothing(
        engine, PayloadValidationError, lambda: manager.add_job("mail", {"to": "x"})
    )
    assert caught.value.errors[0]["path"] == "$.to"  # type: ignore[attr-defined]


def test_stored_schema_that_cannot_be_applied(manager: JobManager, engine: sa.Engine) -> None:
    """A schema stored by other means with a dangling reference fails enqueues cleanly."""
    from queuekit.models import task_identifiers

    manager.register_task("t", schema={"type": "object"})
    with engine.begin() as conn:
        conn.execute(
            sa.update(task_identifiers)
            .where(task_identifiers.c.identifier == "t")
            .values(payload_schema={"$ref": "#/$defs/gone"}, schema_version=99)
        )
    fresh = JobManager(engine, schema_cache_ttl=0)
    caught = _raises_and_writes_nothing(engine, InvalidSchemaError, lambda: fresh.add_job("t", {}))
    assert "#/$defs/gone" in str(caught.value)


def test_names_differing_in_case_accents_or_trailing_space_stay_distinct(
    manager: JobManager, engine: sa.Engine
) -> None:
    """Names compare exactly on every dialect (MySQL's default collations would merge them)."""
    variants = ["Key", "key", "key ", "kéy", "KEY"]
    added = [manager.add_job("t", {"v": v}, job_key=v) for v in variants]
    assert len({job.id for job in added}) == len(variants)
    again = manager.add_job("t", {"v": "again"}, job_key="key", job_key_mode="unsafe_dedupe")
    assert again.id == added[1].id
    with engine.connect() as conn:
        keys = conn.execute(sa.select(sa.column("job_key")).select_from(sa.table("queuekit_jobs")))
        assert sorted(k for (k,) in keys) == sorted(variants)

    manager.register_task("send", schema={"required": ["to"]})
    assert manager.add_job("Send", {}).task_identifier == "Send"  # no schema of its own
    with pytest.raises(PayloadValidationError):
        manager.add_job("send", {})
    manager.register_rate_limit("api", 1, "1 hour")
    manager.register_rate_limit("API", 2, "1 hour")
    assert manager.get_rate_limit("api").capacity == 1  # type: ignore[union-attr]
    assert manager.get_rate_limit("API").capacity == 2  # type: ignore[union-attr]

    manager.add_jobs(
        [JobSpec("q", {"q": q}, queue_name=q) for q in ("Mail", "mail", "mail ", "maíl")]
    )
    assert sorted(q.queue_name for q in manager.list_queues()) == sorted(
        ["Mail", "mail", "mail ", "maíl"]
    )
    claimed = manager.get_jobs(WORKER, task_identifiers=["q"], batch_size=10)
    assert sorted(job.queue_name for job in claimed) == sorted(  # type: ignore[type-var]
        ["Mail", "mail", "mail ", "maíl"]
    )
    assert [j.task_identifier for j in manager.get_jobs(WORKER, task_identifiers=["SEND"])] == []
    [send] = manager.get_jobs(WORKER, task_identifiers=["Send"])
    assert send.task_identifier == "Send"
