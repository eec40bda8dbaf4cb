"""Values no database can store are refused before any statement, on every dialect.

Lone surrogates, NUL, non-string keys, deep or oversized JSON, text longer
than its column, sub-millisecond intervals, durations and times beyond any
clock, and cron schedules that never fire: each is a queuekit error, nothing
is written and the caller's transaction stays usable. Error text coming from
tasks is never refused but made storable, so no outcome is lost. Floats
come back as floats.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from conformance import WORKER, emptied, snapshot

from queuekit import (
    InvalidArgumentError,
    InvalidSchemaError,
    InvalidWorkerIdError,
    JobContext,
    JobError,
    JobManager,
    JobSpec,
    PartialSuccess,
    PayloadValidationError,
    RetryPolicy,
    Worker,
)
from queuekit.cron import CronJob
from queuekit.limits import MAX_DOCUMENT_BYTES, MAX_JSON_NESTING
from queuekit.models import TEXT_LENGTH
from queuekit.types import Job

SURROGATE = "bad \udcff byte"


@pytest.fixture
def engine(module_engine: sa.Engine) -> sa.Engine:
    """This module's migrated database of the parametrized dialect, emptied for each test."""
    return emptied(module_engine)


def _claimed(manager: JobManager, task: str = "t") -> Job:
    manager.add_job(task, {})
    [job] = manager.get_jobs(WORKER, task_identifiers=[task])
    return job


def _refused(
    manager: JobManager,
    engine: sa.Engine,
    error: type[Exception],
    call: Callable[[sa.Connection], object],
) -> pytest.ExceptionInfo[Exception]:
    """``call`` raises ``error`` inside a caller's transaction, which then still works."""
    before = snapshot(engine)
    with engine.connect() as conn:
        transaction = conn.begin()
        with pytest.raises(error) as caught:
            call(conn)
        job = manager.add_job("after", {}, session=conn)  # the transaction is not aborted
        transaction.rollback()
    assert job.task_identifier == "after"
    assert snapshot(engine) == before
    return caught


def _nested(levels: int) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for _ in range(levels - 1):
        document = {"a": document}
    return document


# -- lone surrogates ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"task_identifier": SURROGATE},
        {"queue_name": SURROGATE},
        {"job_key": SURROGATE},
        {"rate_limit_key": SURROGATE},
        {"flags": ["ok", SURROGATE]},
    ],
    ids=lambda o: next(iter(o)),
)
def test_lone_surrogates_in_names_are_refused(
    manager: JobManager, engine: sa.Engine, options: dict[str, Any]
) -> None:
    options = {"task_identifier": "t", **options}
    task = options.pop("task_identifier")
    caught = _refused(
        manager,
        engine,
        InvalidArgumentError,
        lambda conn: manager.add_job(task, {}, session=conn, **options),
    )
    assert "lone surrogate (U+DCFF)" in str(caught.value)
    assert "errors='replace'" in str(caught.value)


def test_lone_surrogates_in_other_names_are_refused(manager: JobManager, engine: sa.Engine) -> None:
    job = _claimed(manager)
    calls: list[tuple[type[Exception], Callable[[sa.Connection], object]]] = [
        (InvalidWorkerIdError, lambda conn: manager.get_jobs(SURROGATE, session=conn)),
        (InvalidWorkerIdError, lambda conn: manager.complete_jobs(SURROGATE, [job], 1)),
        (InvalidArgumentError, lambda conn: manager.register_rate_limit(SURROGATE, 1, 60)),
        (InvalidArgumentError, lambda conn: manager.register_task(SURROGATE, schema=None)),
        (InvalidArgumentError, lambda conn: manager.permanently_fail_jobs([job.id], SURROGATE)),
        (InvalidArgumentError, lambda conn: manager.force_unlock_jobs([SURROGATE], session=conn)),
        (InvalidArgumentError, lambda conn: manager.list_jobs(queue_name=SURROGATE, session=conn)),
    ]
    for error, call in calls:
        _refused(manager, engine, error, call)


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({"to": SURROGATE}, "$.to"),
        ({SURROGATE: 1}, "$"),
        ({"list": [1, {"deep": SURROGATE}]}, "$.list[1].deep"),
        ({"pair": "\ud83d\ude80"}, "$.pair"),  # a surrogate pair in a str is two lone ones
    ],
    ids=["value", "key", "nested", "pair"],
)
def test_lone_surrogates_in_payloads_are_refused(
    manager: JobManager, engine: sa.Engine, payload: dict[str, Any], path: str
) -> None:
    caught = _refused(
        manager,
        engine,
        PayloadValidationError,
        lambda conn: manager.add_job("t", payload, session=conn),
    )
    assert caught.value.errors[0]["path"] == path  # type: ignore[attr-defined]
    assert "lone surrogate" in caught.value.errors[0]["message"]  # type: ignore[attr-defined]


def test_lone_surrogates_in_schemas_and_partial_results_are_refused(
    manager: JobManager, engine: sa.Engine
) -> None:
    _refused(
        manager,
        engine,
        InvalidSchemaError,
        lambda conn: manager.register_task(
            "t", schema={"description": SURROGATE, "type": "object"}, session=conn
        ),
    )
    job = _claimed(manager)
    for partial in (
        PartialSuccess([SURROGATE], []),
        PartialSuccess([], [], retry_from_step=SURROGATE),
        PartialSuccess([], [], results={"r": SURROGATE}),
    ):
        _refused(
            manager,
            engine,
            InvalidArgumentError,
            lambda conn, p=partial: manager.report_partial_success(WORKER, job, p, 1, session=conn),
        )


def test_error_text_with_lone_surrogates_is_stored_with_replacement_characters(
    manager: JobManager,
) -> None:
    jobs = [_claimed(manager, "one"), _claimed(manager, "two")]
    failed = manager.fail_jobs(
        WORKER, [JobError(jobs[0], ValueError(SURROGATE)), JobError(jobs[1], "text \udcfe")], 5
    )
    assert [job.last_error for job in failed] == ["bad \ufffd byte", "text \ufffd"]
    [record] = manager.job_history(jobs[0].id)
    assert record.status == "failed" and record.error_message == "bad \ufffd byte"
    assert record.error_stack is not None and "\ufffd" in record.error_stack


def test_worker_never_loses_an_error_text_with_lone_surrogates(manager: JobManager) -> None:
    job = manager.add_job("broken", {}, max_attempts=1)

    def broken(_payload: dict[str, Any], _ctx: JobContext) -> None:
        raise ValueError(b"name: \xff".decode("utf-8", "surrogateescape"))

    worker = Worker(manager, {"broken": broken}, maintenance=False, poll_interval=0.05)
    stats = worker.drain()
    assert (stats.failed, stats.exhausted, stats.errors) == (1, 1, 0)
    stored = manager.get_job(job.id)
    assert stored is not None and stored.status == "exhausted"
    assert stored.last_error == "name: \ufffd"
    [record] = manager.job_history(job.id)
    assert (record.status, record.error_message) == ("failed", "name: \ufffd")


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message for you")


def test_exception_whose_str_raises_is_recorded(manager: JobManager) -> None:
    job = _claimed(manager)
    [failed] = manager.fail_jobs(WORKER, [JobError(job, _Unprintable())], 1)
    assert failed.last_error == "_Unprintable (its message could not be rendered)"
    [record] = manager.job_history(job.id)
    assert record.status == "failed" and record.error_stack is not None


# -- NUL in every text --------------------------------------------------------------------------


def test_nul_is_refused_in_worker_ids_reasons_and_steps(
    manager: JobManager, engine: sa.Engine
) -> None:
    job = _claimed(manager)
    calls: list[tuple[type[Exception], Callable[[sa.Connection], object]]] = [
        (InvalidWorkerIdError, lambda conn: manager.get_jobs("w\x00", session=conn)),
        (InvalidWorkerIdError, lambda conn: manager.heartbeat("w\x00", [job], session=conn)),
        (InvalidWorkerIdError, lambda conn: manager.release_jobs("w\x00", [job], session=conn)),
        (
            InvalidArgumentError,
            lambda conn: manager.permanently_fail_jobs([job.id], "why\x00", session=conn),
        ),
        (
            InvalidArgumentError,
            lambda conn: manager.report_partial_success(
                WORKER, job, PartialSuccess([], [], retry_from_step="s\x00"), 1, session=conn
            ),
        ),
        (InvalidArgumentError, lambda conn: manager.add_job("t", {}, flags=["f\x00"])),
    ]
    for error, call in calls:
        caught = _refused(manager, engine, error, call)
        assert "NUL" in str(caught.value)


# -- column lengths -------------------------------------------------------------------------------


def test_text_longer_than_its_column_is_refused(manager: JobManager, engine: sa.Engine) -> None:
    job = _claimed(manager)
    too_long = "r" * (TEXT_LENGTH + 1)
    caught = _refused(
        manager,
        engine,
        InvalidArgumentError,
        lambda conn: manager.permanently_fail_jobs([job.id], too_long, session=conn),
    )
    assert f"at most {TEXT_LENGTH} characters" in str(caught.value)
    _refused(
        manager,
        engine,
        InvalidArgumentError,
        lambda conn: manager.report_partial_success(
            WORKER, job, PartialSuccess([], [], retry_from_step=too_long), 1, session=conn
        ),
    )


def test_longest_text_of_four_byte_characters_is_stored(manager: JobManager) -> None:
    longest = "\U0001f680" * TEXT_LENGTH  # four bytes each in UTF-8
    job = _claimed(manager)
    partial = PartialSuccess(["a"], ["b"], retry_from_step=longest)
    assert manager.report_partial_success(WORKER, job, partial, 1) is not None
    [record] = manager.job_history(job.id)
    assert record.retry_from_step == longest
    [failed] = manager.permanently_fail_jobs([job.id], longest)
    assert failed.last_error == longest


def test_long_error_text_is_truncated_not_refused(manager: JobManager) -> None:
    job = _claimed(manager)
    [failed] = manager.fail_jobs(WORKER, [JobError(job, "\U0001f680" * 70_000)], 1)
    assert failed.last_error is not None and len(failed.last_error) <= TEXT_LENGTH
    assert "characters omitted" in failed.last_error


# -- JSON documents -------------------------------------------------------------------------------


def test_oversized_payload_is_refused_with_a_clear_error(
    manager: JobManager, engine: sa.Engine
) -> None:
    payload = {"blob": "x" * MAX_DOCUMENT_BYTES}
    caught = _refused(
        manager,
        engine,
        PayloadValidationError,
        lambda conn: manager.add_job("t", payload, session=conn),
    )
    assert "store large data elsewhere" in str(caught.value)


def test_largest_payloads_are_stored_even_many_in_one_batch(manager: JobManager) -> None:
    # Quotes double in JSON and again in a MySQL statement: the worst case for its packet.
    payload = {"blob": '"' * ((MAX_DOCUMENT_BYTES - 20) // 2)}
    jobs = manager.add_jobs([JobSpec("t", payload) for _ in range(5)])
    assert len(jobs) == 5
    stored = manager.get_job(jobs[-1].id)
    assert stored is not None and stored.payload == payload
    keyed = manager.add_jobs([JobSpec("t", payload, job_key=f"k{n}") for n in range(3)])
    assert len(keyed) == 3


def test_nesting_is_bounded_without_recursion_errors(
    manager: JobManager, engine: sa.Engine
) -> None:
    deepest = _nested(MAX_JSON_NESTING)
    job = manager.add_job("t", deepest)
    stored = manager.get_job(job.id)
    assert stored is not None and stored.payload == deepest
    for levels in (MAX_JSON_NESTING + 1, 5000):
        caught = _refused(
            manager,
            engine,
            PayloadValidationError,
            lambda conn, n=levels: manager.add_job("t", _nested(n), session=conn),
        )
        assert "nested deeper than" in str(caught.value)
        _refused(
            manager,
            engine,
            InvalidSchemaError,
            lambda conn, n=levels: manager.register_task("s", schema=_nested(n), session=conn),
        )


@pytest.mark.parametrize(
    "payload", [{1: "a", "1": "b"}, {"inner": {None: 1}}, {"list": [{(1, 2): 3}]}], ids=repr
)
def test_non_string_keys_are_refused(
    manager: JobManager, engine: sa.Engine, payload: dict[Any, Any]
) -> None:
    caught = _refused(
        manager,
        engine,
        PayloadValidationError,
        lambda conn: manager.add_job("t", payload, session=conn),
    )
    assert "non-string key" in str(caught.value)


def test_non_string_keys_in_schemas_and_results_are_refused(
    manager: JobManager, engine: sa.Engine
) -> None:
    _refused(
        manager,
        engine,
        InvalidSchemaError,
        lambda conn: manager.register_task("t", schema={"properties": {1: {}}}, session=conn),
    )
    job = _claimed(manager)
    _refused(
        manager,
        engine,
        InvalidArgumentError,
        lambda conn: manager.report_partial_success(
            WORKER, job, PartialSuccess([], [], results={2: "x"}), 1, session=conn
        ),
    )


@pytest.mark.parametrize("schema", [{"$schema": []}, {"$schema": 5}, {"$schema": {}}], ids=repr)
def test_schema_keyword_that_is_no_string_is_refused(
    manager: JobManager, engine: sa.Engine, schema: dict[str, Any]
) -> None:
    caught = _refused(
        manager,
        engine,
        InvalidSchemaError,
        lambda conn: manager.register_task("t", schema=schema, session=conn),
    )
    assert "$schema" in str(caught.value)


FLOATS = {
    "huge": 1e308,
    "large": 1e16,
    "negative": -2.5e300,
    "tiny": 5e-324,
    "small": 1.5e-7,
    "one": 1.0,
    "int": 10**20,
    "list": [1e20, 3],
}


def test_floats_stay_floats(manager: JobManager) -> None:
    job = manager.add_job("t", FLOATS)
    bulk = manager.add_jobs([JobSpec("bulk", FLOATS) for _ in range(250)])  # the COPY path
    for added in (job, bulk[-1]):
        stored = manager.get_job(added.id)
        assert stored is not None
        assert stored.payload == FLOATS
        assert {k: type(v) for k, v in stored.payload.items()} == {
            k: type(v) for k, v in FLOATS.items()
        }
        assert type(stored.payload["list"][0]) is float
    [claimed] = manager.get_jobs(WORKER, task_identifiers=["t"])
    manager.report_partial_success(WORKER, claimed, PartialSuccess([], [], results=FLOATS), 1)
    [record] = manager.job_history(job.id)
    assert type(record.payload["huge"]) is float
    assert type(record.partial_results["huge"]) is float and record.partial_results == FLOATS


# -- durations and times --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "interval", [0.0001, 0.0004, "0.0004 seconds", timedelta(microseconds=400)], ids=repr
)
def test_sub_millisecond_rate_limit_intervals_are_refused(
    manager: JobManager, engine: sa.Engine, interval: Any
) -> None:
    caught = _refused(
        manager,
        engine,
        InvalidArgumentError,
        lambda conn: manager.register_rate_limit("k", 1, interval, session=conn),
    )
    assert "at least 1 millisecond" in str(caught.value)


def test_a_millisecond_after_rounding_is_accepted(manager: JobManager) -> None:
    limit = manager.register_rate_limit("k", 1, 0.0006)
    assert limit.interval == timedelta(milliseconds=1)


def test_durations_beyond_any_float_are_refused(manager: JobManager, engine: sa.Engine) -> None:
    huge = 10**400
    calls: list[Callable[[sa.Connection], object]] = [
        lambda conn: manager.reset_locked_jobs(lock_timeout=huge, session=conn),
        lambda conn: manager.get_jobs(WORKER, history_retention=huge, session=conn),
        lambda conn: manager.register_rate_limit("k", 1, huge, session=conn),
        lambda conn: manager.gc_task_identifiers(keep=huge, session=conn),
        lambda conn: RetryPolicy(base_delay=huge),
        lambda conn: JobManager(engine, schema_cache_ttl=huge),
    ]
    for call in calls:
        _refused(manager, engine, InvalidArgumentError, call)


def test_times_outside_the_calendar_in_utc_are_refused(
    manager: JobManager, engine: sa.Engine
) -> None:
    early = datetime.min.replace(tzinfo=timezone(timedelta(hours=23)))
    late = datetime.max.replace(tzinfo=timezone(timedelta(hours=-23)))
    job = manager.add_job("t", {})
    for moment in (early, late):
        calls: list[Callable[[sa.Connection], object]] = [
            lambda conn, m=moment: manager.add_job("t", {}, run_at=m, session=conn),
            lambda conn, m=moment: manager.reschedule_jobs([job.id], run_at=m, session=conn),
            lambda conn, m=moment: manager.query_history(from_time=m, session=conn),
            lambda conn, m=moment: manager.replay_failed_jobs(to_time=m, session=conn),
        ]
        for call in calls:
            caught = _refused(manager, engine, InvalidArgumentError, call)
            assert "outside the years 1-9999" in str(caught.value)
    extreme = manager.add_job("t", {}, run_at=datetime.max.replace(tzinfo=UTC))
    assert extreme.run_at.year == 9999


# -- cron -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"])
def test_cron_schedules_that_never_fire_are_refused(schedule: str) -> None:
    with pytest.raises(InvalidArgumentError, match="never fires"):
        CronJob("never", schedule)


def test_rare_cron_schedules_are_accepted() -> None:
    assert CronJob("leap", "0 0 29 2 *").schedule == "0 0 29 2 *"
    assert CronJob("either", "0 0 31 2 1").schedule == "0 0 31 2 1"  # Mondays too


@pytest.mark.parametrize("options", [["timezone"], "UTC", 5, {1: "x", "a": "b"}], ids=repr)
def test_cron_options_that_are_no_mapping_of_known_names_are_refused(options: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="cron option"):
        CronJob("entry", "* * * * *", {}, options)
