"""Property-based fuzzing of every public JobManager method and the command line.

Arguments are drawn from strings (lone surrogates, NUL, huge, any Unicode),
numbers (huge, tiny, negative, NaN, infinite), times far from now and nested
structures, mixed with valid values so that calls also get past their first
check. On every dialect each call must succeed or raise a QueueKitError; a
call in its own transaction that fails writes nothing, and a failed call in
the caller's transaction leaves that transaction usable. Each CLI command
exits 0 or 2 (one error line, nothing written when it fails).

Example counts are bounded so the whole file runs in a minute or two.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conformance import WORKER, emptied, snapshot
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from queuekit import (
    JobError,
    JobManager,
    JobSpec,
    PartialSuccess,
    QueueKitError,
    RetryPolicy,
)
from queuekit.cli import cli
from queuekit.cron import CronJob
from queuekit.repository import Outcome
from queuekit.types import Job

EXAMPLES = 16
CLI_EXAMPLES = 6
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    # Shrinking a database-backed failure can take many minutes; report it as found.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- strategies --------------------------------------------------------------------------------

SPECIAL_TEXTS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\udcff",
    "caf\udce9",
    "\ud83d\ude80",
    "🚀",
    "x" * 256,
    "y" * 20_000,
    "\U0001f680" * 16_001,
    "'; DROP TABLE queuekit_jobs; --",
    "0 0 31 2 *",
    "5 minutes",
    "1e400 seconds",
    "nan",
]


def _pick(values: list[Any]) -> st.SearchStrategy[Any]:
    """One of ``values``, by index, so huge values never appear in a strategy's repr."""
    return st.integers(min_value=0, max_value=len(values) - 1).map(lambda index: values[index])


texts = st.one_of(
    _pick(SPECIAL_TEXTS),
    st.text(st.characters(blacklist_categories=()), max_size=40),  # surrogates included
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**31, -(2**31) - 1, 2**63, 10**400, -(10**400)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, 1e-4, 0.0004, -0.0, float("nan"), float("inf")]),
)
offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
times = st.one_of(
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(timezones=offsets),
    st.datetimes(),  # naive
    st.sampled_from([datetime.min, datetime.max]).flatmap(
        lambda moment: offsets.map(lambda zone: moment.replace(tzinfo=zone))
    ),
)
leaves = st.one_of(st.none(), st.booleans(), numbers, texts)


def _nest(levels: int) -> Any:
    value: Any = "bottom"
    for level in range(levels):
        value = {"k": value} if level % 2 else [value]
    return value


json_like = st.one_of(
    st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.one_of(texts, st.integers(), st.none()), inner, max_size=4),
        ),
        max_leaves=12,
    ),
    st.integers(min_value=25, max_value=2000).map(_nest),
    _pick([{"blob": "z" * (5 * 1024 * 1024)}, {1: "a", "1": "b"}, {"$schema": []}]),
)
anything = st.one_of(
    leaves,
    json_like,
    times,
    st.binary(max_size=8),
    st.uuids(),
    st.sets(st.integers(), max_size=3),
    st.timedeltas(),
)
names = st.one_of(st.sampled_from(["t", "q", "k"]), texts, anything)
optional_names = st.one_of(st.none(), names)
name_lists = st.one_of(st.none(), st.lists(names, max_size=3), anything)
ints = st.one_of(st.sampled_from([0, 1, 5]), numbers, anything)
durations = st.one_of(st.sampled_from(["1 hour", 1, 0]), numbers, texts, st.timedeltas(), anything)
optional_times = st.one_of(st.none(), times, anything)
payloads = st.one_of(st.just({}), json_like, anything)
schemas = st.one_of(
    st.none(),
    st.just({"type": "object", "properties": {"to": {"type": "string"}}}),
    json_like.map(lambda value: {"type": "object", "properties": {"x": value}}),
    json_like.map(lambda value: {"$schema": value}),
    json_like,
    anything,
)
worker_ids = st.one_of(st.just(WORKER), texts, anything)


def job_lists(claimed: Job) -> st.SearchStrategy[Any]:
    """The claimed job, altered copies of it, or anything at all."""
    altered = st.builds(
        lambda ident, corr: dataclasses.replace(claimed, id=ident, correlation_id=corr),
        st.one_of(st.just(claimed.id), st.uuids()),
        st.one_of(st.just(claimed.correlation_id), st.none(), st.uuids()),
    )
    return st.one_of(st.just([claimed]), st.lists(altered, max_size=2), anything)


def partials() -> st.SearchStrategy[Any]:
    steps = st.one_of(st.lists(texts, max_size=3), anything)
    return st.one_of(
        st.builds(PartialSuccess, steps, steps, st.one_of(st.none(), texts, anything), json_like),
        anything,
    )


def job_ids(claimed: Job) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.just([claimed.id]),
        st.lists(st.one_of(st.uuids(), texts, anything), max_size=3),
        anything,
    )


def job_specs() -> st.SearchStrategy[Any]:
    spec = st.builds(
        JobSpec,
        names,
        payloads,
        queue_name=optional_names,
        run_at=optional_times,
        priority=ints,
        max_attempts=ints,
        job_key=optional_names,
        job_key_mode=st.one_of(st.none(), st.sampled_from(["replace", "unsafe_dedupe"]), texts),
        flags=st.one_of(st.just(()), name_lists),
        rate_limit_key=st.one_of(st.none(), st.just("known"), texts),
    )
    return st.one_of(st.lists(spec, max_size=3), anything)


# -- the calls ---------------------------------------------------------------------------------

Call = Callable[[JobManager, Any], object]


def calls(claimed: Job) -> dict[str, st.SearchStrategy[Call]]:
    """Every public method, as a strategy of calls taking ``(manager, session)``."""
    jobs = job_lists(claimed)
    ids = job_ids(claimed)
    outcome = st.builds(
        Outcome,
        st.just(claimed),
        st.sampled_from(["completed", "failed", "partial_success"]),
        st.integers(min_value=0, max_value=10),
        st.one_of(st.none(), texts, texts.map(ValueError)),
        st.one_of(st.none(), partials().filter(lambda p: isinstance(p, PartialSuccess))),
    )

    def call(method: str, *args: st.SearchStrategy[Any], **kwargs: st.SearchStrategy[Any]) -> Any:
        return st.tuples(st.tuples(*args), st.fixed_dictionaries(kwargs)).map(
            lambda drawn: (
                lambda manager, session: getattr(manager, method)(
                    *drawn[0], **drawn[1], session=session
                )
            )
        )

    return {
        "register_task": call("register_task", names, schema=schemas),
        "get_task": call("get_task", names),
        "add_job": call(
            "add_job",
            names,
            payloads,
            queue_name=optional_names,
            run_at=optional_times,
            priority=ints,
            max_attempts=ints,
            job_key=optional_names,
            job_key_mode=st.one_of(st.none(), texts),
            flags=st.one_of(st.just(()), name_lists),
            rate_limit_key=st.one_of(st.none(), st.just("known"), texts),
        ),
        "add_jobs": call("add_jobs", job_specs()),
        "get_jobs": call(
            "get_jobs",
            worker_ids,
            task_identifiers=name_lists,
            forbidden_flags=name_lists,
            batch_size=ints,
            history_retention=durations,
        ),
        "finish_jobs": call("finish_jobs", worker_ids, st.one_of(st.lists(outcome, max_size=2))),
        "complete_jobs": call("complete_jobs", worker_ids, jobs, ints),
        "fail_jobs": call(
            "fail_jobs",
            worker_ids,
            st.one_of(
                st.lists(
                    st.builds(JobError, st.just(claimed), st.one_of(texts, texts.map(ValueError))),
                    max_size=2,
                ),
                anything,
            ),
            ints,
        ),
        "report_partial_success": call(
            "report_partial_success", worker_ids, st.just(claimed), partials(), ints
        ),
        "heartbeat": call("heartbeat", worker_ids, jobs),
        "release_jobs": call("release_jobs", worker_ids, jobs),
        "reschedule_jobs": call(
            "reschedule_jobs",
            ids,
            run_at=optional_times,
            priority=st.one_of(st.none(), ints),
            max_attempts=st.one_of(st.none(), ints),
        ),
        "replay_failed_jobs": call(
            "replay_failed_jobs",
            from_time=optional_times,
            to_time=optional_times,
            task_identifier=optional_names,
            max_attempts=st.one_of(st.none(), ints),
        ),
        "permanently_fail_jobs": call("permanently_fail_jobs", ids, texts),
        "force_unlock_jobs": call("force_unlock_jobs", name_lists),
        "force_unlock_queues": call("force_unlock_queues", name_lists),
        "reset_locked_jobs": call("reset_locked_jobs", lock_timeout=durations),
        "gc_job_history": call("gc_job_history"),
        "gc_job_queues": call("gc_job_queues"),
        "gc_task_identifiers": call("gc_task_identifiers", keep=durations),
        "register_rate_limit": call("register_rate_limit", names, ints, durations),
        "refill_rate_limits": call("refill_rate_limits"),
        "get_rate_limit": call("get_rate_limit", names),
        "get_job": call("get_job", st.one_of(st.just(claimed.id), st.uuids(), anything)),
        "list_jobs": call(
            "list_jobs",
            status=st.one_of(st.none(), texts),
            task_identifier=optional_names,
            queue_name=optional_names,
            limit=ints,
        ),
        "job_history": call("job_history", st.one_of(st.just(claimed.id), anything)),
        "query_history": call(
            "query_history",
            from_time=optional_times,
            to_time=optional_times,
            task_identifier=optional_names,
            status=st.one_of(st.none(), texts),
            limit=ints,
        ),
        "list_queues": call("list_queues"),
        "stats": call("stats"),
        "now": call("now"),
        "check_database": call("check_database"),
    }


METHODS = sorted(calls(Job(**{f.name: None for f in dataclasses.fields(Job)})))  # type: ignore[arg-type]


@pytest.fixture
def engine(module_engine: sa.Engine) -> sa.Engine:
    """This module's database of the parametrized dialect, emptied for each test."""
    return emptied(module_engine)


def _claimed(manager: JobManager) -> Job:
    manager.register_rate_limit("known", 100, "1 hour")
    manager.add_job("t", {"n": 1}, queue_name="q")
    [job] = manager.get_jobs(WORKER)
    return job


@pytest.mark.parametrize("method", METHODS)
def test_public_methods_raise_queuekit_errors_and_write_nothing(
    engine: sa.Engine, method: str
) -> None:
    manager = JobManager(engine)
    claimed = _claimed(manager)
    strategy = calls(claimed)[method]

    @FUZZ
    @given(strategy, st.booleans())
    def run(call: Call, own_transaction: bool) -> None:
        before = snapshot(engine)
        if own_transaction:
            try:
                call(manager, None)
            except QueueKitError:
                assert snapshot(engine) == before, "a failed call wrote something"
            return
        with engine.connect() as conn:
            transaction = conn.begin()
            try:
                call(manager, conn)
            except QueueKitError:
                # The transaction is still usable: it can read and write.
                probe = manager.add_job("probe", {}, session=conn)
                assert manager.get_job(probe.id, session=conn) is not None
            finally:
                transaction.rollback()
        assert snapshot(engine) == before

    run()


@FUZZ
@given(
    engine_options=st.fixed_dictionaries(
        {},
        optional={
            "retry": st.one_of(st.tuples(durations, numbers, durations, numbers, ints), anything),
            "validate_payloads": anything,
            "schema": optional_names,
            "schema_cache_ttl": durations,
        },
    )
)
def test_manager_options_raise_queuekit_errors(
    module_engine: sa.Engine, engine_options: dict[str, Any]
) -> None:
    try:
        retry = engine_options.get("retry")
        if isinstance(retry, tuple) and len(retry) == 5:
            engine_options["retry"] = RetryPolicy(*retry)
        JobManager(module_engine, **engine_options)
    except QueueKitError:
        pass


@FUZZ
@given(
    identifier=names,
    schedule=st.one_of(st.sampled_from(["* * * * *", "0 0 31 2 *", "0 0 29 2 *"]), texts),
    payload=st.one_of(st.none(), payloads),
    options=st.one_of(
        st.none(),
        st.dictionaries(
            st.sampled_from(["timezone", "queue_name", "priority", "flags", "max_attempts"]),
            anything,
            max_size=2,
        ),
        anything,
    ),
)
def test_cron_entries_raise_queuekit_errors(
    identifier: Any, schedule: Any, payload: Any, options: Any
) -> None:
    with contextlib.suppress(QueueKitError):
        CronJob(identifier, schedule, payload, options)


# -- the command line -------------------------------------------------------------------------

#: Revisions that would really move the schema; the fuzz only types unknown ones.
_REAL_REVISION = re.compile(r"^(head|heads|base|queuekit_\d+)$|[+-]\d+$")

cli_texts = st.one_of(texts, st.sampled_from(["1", "0", "-1", "now", "10**400", "1e400"])).filter(
    lambda text: "\x00" not in text  # the operating system never passes NUL in arguments
)
cli_json = st.one_of(cli_texts, json_like.map(lambda value: _dumps(value)))


def _dumps(value: Any) -> str:
    import json

    try:
        return json.dumps(value, allow_nan=True)
    except (TypeError, ValueError, RecursionError):
        return "{"


def _cli_commands(job_id: uuid.UUID, tmp: Path) -> st.SearchStrategy[list[str]]:
    ident = st.one_of(st.just(str(job_id)), cli_texts)
    option = st.one_of(st.just([]), cli_texts.map(lambda v: [v]))

    def with_option(flag: str) -> st.SearchStrategy[list[str]]:
        return option.map(lambda values: [f"{flag}={values[0]}"] if values else [])

    def schema_file(text: str) -> str:
        path = tmp / f"schema-{uuid.uuid4().hex}.json"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        return str(path)

    def command(*parts: st.SearchStrategy[list[str]]) -> st.SearchStrategy[list[str]]:
        return st.tuples(*parts).map(lambda lists: [arg for part in lists for arg in part])

    fixed = st.just
    return st.one_of(
        command(
            fixed(["add"]),
            cli_texts.map(lambda v: [v]),
            cli_json.map(lambda v: [v]),
            with_option("--queue"),
            with_option("--delay"),
            with_option("--run-at"),
            with_option("--priority"),
            with_option("--flag"),
            with_option("--job-key"),
            with_option("--rate-limit-key"),
        ),
        command(fixed(["jobs", "list"]), with_option("--task"), with_option("--limit")),
        command(fixed(["jobs", "show"]), ident.map(lambda v: [v])),
        command(fixed(["history"]), with_option("--since"), with_option("--task")),
        command(fixed(["replay"]), with_option("--since"), with_option("--task")),
        command(fixed(["unlock", "jobs"]), st.lists(cli_texts, min_size=1, max_size=2)),
        command(fixed(["unlock", "queues"]), st.lists(cli_texts, min_size=1, max_size=2)),
        command(fixed(["fail"]), ident.map(lambda v: [v]), with_option("--reason")),
        command(fixed(["reschedule"]), ident.map(lambda v: [v]), with_option("--priority")),
        command(fixed(["rate-limit", "set"]), st.lists(cli_texts, min_size=3, max_size=3)),
        command(fixed(["rate-limit", "show"]), cli_texts.map(lambda v: [v])),
        command(
            fixed(["schema", "set"]),
            cli_texts.map(lambda v: [v]),
            cli_json.map(lambda v: [schema_file(v)]),
        ),
        command(fixed(["schema", "show"]), cli_texts.map(lambda v: [v])),
        command(fixed(["schema", "remove"]), cli_texts.map(lambda v: [v])),
        command(fixed(["gc"]), with_option("--keep-task-identifiers")),
        command(
            fixed(["maintain", "--once"]),
            with_option("--lock-timeout"),
            with_option("--gc-schedule"),
            with_option("--gc-timezone"),
        ),
        command(
            fixed(["db", "upgrade"]),
            cli_texts.filter(lambda v: not _REAL_REVISION.search(v)).map(lambda v: [v]),
        ),
        command(fixed(["stats"])),
    )


def test_cli_commands_exit_0_or_2(engine: sa.Engine, tmp_path: Path) -> None:
    manager = JobManager(engine)
    claimed = _claimed(manager)
    url = engine.url.render_as_string(hide_password=False)

    @settings(FUZZ, max_examples=CLI_EXAMPLES * 8)
    @given(_cli_commands(claimed.id, tmp_path))
    def run(args: list[str]) -> None:
        before = snapshot(engine)
        result = CliRunner().invoke(cli, ["--database-url", url, "--json", *args])
        assert result.exit_code in (0, 2), (args, result.exit_code, result.stderr)
        assert "Traceback" not in result.output and "unexpected" not in result.stderr
        if result.exit_code == 2:
            assert len(result.stderr.splitlines()) == 1, result.stderr
            assert snapshot(engine) == before, f"{args} failed but wrote something"

    run()
