"""Random sequences of every public operation against a real database.

A Hypothesis state machine enqueues (with job keys, named queues, rate-limit
keys, schemas), claims, completes, fails, reports partial success, heartbeats,
releases, reschedules, replays, permanently fails, force-unlocks, resets, runs
GC and refills, and reads — in any order, with stale and foreign claims
mixed in. After every step it reads the tables and checks:

- ``attempts <= max_attempts`` for every job;
- a locked queue has exactly one locked job, an unlocked queue none;
- ``0 <= available_tokens <= capacity`` for every bucket;
- every ``started`` history row belongs to a job locked under that row's
  correlation id (and every locked job has its ``started`` row);
- no job key is held by two jobs.

Runs on SQLite, PostgreSQL and MariaDB, one database per dialect emptied
before each example.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from queuekit import (
    InvalidArgumentError,
    Job,
    JobError,
    JobKeyError,
    JobManager,
    JobSpec,
    PartialSuccess,
    PayloadValidationError,
    RetryPolicy,
)
from queuekit.models import job_history, job_queues, jobs, metadata, rate_limits

WORKERS = ("w1", "w2", "w3")
TASKS = ("t1", "t2")
QUEUES = (None, None, "qa", "qb")
RATE_KEYS = (None, None, None, "ka", "kb")
JOB_KEYS = (None, None, "k1", "k2")
MODES = (None, "replace", "preserve_run_at", "unsafe_dedupe")
SCHEMAS: tuple[dict[str, Any] | None, ...] = (
    None,
    {"type": "object", "properties": {"n": {"type": "integer"}}},
    {"type": "object", "required": ["m"]},  # rejects a third of the payloads
)
IMMEDIATE_RETRY = RetryPolicy(base_delay=0, max_delay=0, jitter=0)

workers = st.sampled_from(WORKERS)
max_attempts = st.integers(min_value=1, max_value=3)


@st.composite
def job_specs(draw: st.DrawFn) -> JobSpec:
    """Any valid job this machine may enqueue (a mode only with a key)."""
    key = draw(st.sampled_from(JOB_KEYS))
    return JobSpec(
        draw(st.sampled_from(TASKS)),
        draw(st.sampled_from([{"n": 1}, {"n": 2, "m": True}, {"n": 3, "m": 0}])),
        queue_name=draw(st.sampled_from(QUEUES)),
        priority=draw(st.integers(-1, 1)),
        max_attempts=draw(max_attempts),
        job_key=key,
        job_key_mode=None if key is None else draw(st.sampled_from(MODES)),
        flags=draw(st.sampled_from([(), ("slow",)])),
        rate_limit_key=draw(st.sampled_from(RATE_KEYS)),
    )


class QueueMachine(RuleBasedStateMachine):
    """Drives one JobManager; subclasses set ``engine``."""

    engine: sa.Engine

    def __init__(self) -> None:
        super().__init__()
        self.manager = JobManager(self.engine, retry=IMMEDIATE_RETRY, schema_cache_ttl=0)
        self.job_ids: list[uuid.UUID] = []
        self.claims: list[Job] = []

    @initialize()
    def empty_database(self) -> None:
        with self.engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())
        self.manager.register_rate_limit("ka", 2, "1 hour")
        self.manager.register_rate_limit("kb", 1, 0.05)

    # -- enqueue -------------------------------------------------------------------

    def _enqueue(self, specs: list[JobSpec]) -> None:
        try:
            added = self.manager.add_jobs(specs)
        except PayloadValidationError:
            return
        assert len(added) == len(specs)
        self.job_ids += [job.id for job in added]

    @rule(spec=job_specs(), delay=st.sampled_from([None, -1, 3600]))
    def add_job(self, spec: JobSpec, delay: int | None) -> None:
        run_at = None if delay is None else self.manager.now() + timedelta(seconds=delay)
        self._enqueue([JobSpec(**{**spec.__dict__, "run_at": run_at})])

    @rule(specs=st.lists(job_specs(), min_size=1, max_size=6))
    def add_jobs(self, specs: list[JobSpec]) -> None:
        self._enqueue(specs)

    @rule(spec=job_specs(), mode=st.sampled_from(MODES[1:]))
    def add_job_with_mode_but_no_key(self, spec: JobSpec, mode: str) -> None:
        bad = JobSpec(**{**spec.__dict__, "job_key": None, "job_key_mode": mode})
        before = self.manager.stats().by_status
        try:
            self.manager.add_jobs([bad])
        except JobKeyError:
            assert self.manager.stats().by_status == before
        else:
            raise AssertionError("a job key mode without a key was accepted")

    @rule(task=st.sampled_from(TASKS), schema=st.sampled_from(SCHEMAS))
    def register_task(self, task: str, schema: dict[str, Any] | None) -> None:
        assert self.manager.register_task(task, schema=schema).payload_schema == schema

    @rule(
        key=st.sampled_from(["ka", "kb"]),
        capacity=st.integers(1, 3),
        interval=st.sampled_from([0.05, 3600]),
    )
    def register_rate_limit(self, key: str, capacity: int, interval: float) -> None:
        limit = self.manager.register_rate_limit(key, capacity, interval)
        assert limit.capacity == capacity

    # -- worker surface ----------------------------------------------------------------

    @rule(
        worker=workers,
        size=st.sampled_from([0, 1, 2, 3, 6]),
        tasks=st.sampled_from([None, None, ["t1"], []]),
        forbidden=st.sampled_from([None, ["slow"]]),
    )
    def get_jobs(
        self, worker: str, size: int, tasks: list[str] | None, forbidden: list[str] | None
    ) -> None:
        claimed = self.manager.get_jobs(
            worker, batch_size=size, task_identifiers=tasks, forbidden_flags=forbidden
        )
        assert len(claimed) <= size
        queues = [j.queue_name for j in claimed if j.queue_name is not None]
        assert len(queues) == len(set(queues)), "two jobs of one queue in one claim"
        for job in claimed:
            assert job.status == "locked" and job.locked_by == worker
            assert job.correlation_id is not None
            if tasks is not None:
                assert job.task_identifier in tasks
            if forbidden:
                assert "slow" not in job.flags
        self.claims += claimed

    @rule(worker=workers, size=st.integers(1, 6), data=st.data())
    def work_a_batch(self, worker: str, size: int, data: st.DataObject) -> None:
        """What a worker does: claim, then finish each job one way or another (or keep it)."""
        claimed = self.manager.get_jobs(worker, batch_size=size)
        actions = ("complete", "fail", "partial", "release", "keep")
        plan = data.draw(st.lists(st.sampled_from(actions), min_size=6, max_size=6))[: len(claimed)]
        chosen = {
            action: [j for j, a in zip(claimed, plan, strict=True) if a == action]
            for action in actions
        }
        assert len(self.manager.complete_jobs(worker, chosen["complete"], 1)) == len(
            chosen["complete"]
        )
        failed = self.manager.fail_jobs(worker, [JobError(j, "x") for j in chosen["fail"]], 1)
        assert len(failed) == len(chosen["fail"])
        for job in chosen["partial"]:
            assert self.manager.report_partial_success(worker, job, PartialSuccess([], ["s"]), 1)
        assert len(self.manager.release_jobs(worker, chosen["release"])) == len(chosen["release"])
        self.claims += claimed

    # Picks draw plain indices, never ``sampled_from(<current list>)``: what the
    # database did (which jobs a claim took, whether a bucket refilled) may
    # differ between runs of one example, and the draws must not depend on it.

    def _pick_claims(self, data: st.DataObject) -> list[Job]:
        picks = data.draw(st.lists(st.integers(0, 999), max_size=3))
        if not self.claims:
            return []
        chosen = {i % len(self.claims) for i in picks}
        return [self.claims[i] for i in sorted(chosen)]

    @rule(worker=workers, data=st.data())
    def complete_jobs(self, worker: str, data: st.DataObject) -> None:
        chosen = self._pick_claims(data)
        done = self.manager.complete_jobs(worker, chosen, 1)
        assert {j.id for j in done} <= {j.id for j in chosen}
        for job in done:
            assert self.manager.get_job(job.id) is None

    @rule(worker=workers, data=st.data())
    def fail_jobs(self, worker: str, data: st.DataObject) -> None:
        chosen = self._pick_claims(data)
        failed = self.manager.fail_jobs(worker, [JobError(j, "boom") for j in chosen], 1)
        assert {j.id for j in failed} <= {j.id for j in chosen}
        assert all(j.status in ("available", "exhausted") for j in failed)

    @rule(worker=workers, data=st.data())
    def report_partial_success(self, worker: str, data: st.DataObject) -> None:
        picked = self._pick_claims(data)
        if not picked:
            return
        job = picked[0]
        result = self.manager.report_partial_success(worker, job, PartialSuccess(["a"], ["b"]), 1)
        assert result is None or (result.id == job.id and result.status != "locked")

    @rule(worker=workers, data=st.data())
    def heartbeat(self, worker: str, data: st.DataObject) -> None:
        chosen = self._pick_claims(data)
        held = self.manager.heartbeat(worker, chosen)
        assert all(job in chosen for job in held)

    @rule(worker=workers, data=st.data())
    def release_jobs(self, worker: str, data: st.DataObject) -> None:
        chosen = self._pick_claims(data)
        released = self.manager.release_jobs(worker, chosen)
        assert all(j.status != "locked" for j in released)

    # -- admin --------------------------------------------------------------------------

    def _pick_ids(self, data: st.DataObject) -> list[uuid.UUID]:
        picks = data.draw(st.lists(st.one_of(st.integers(0, 999), st.uuids()), max_size=3))
        return [
            self.job_ids[p % len(self.job_ids)]
            if isinstance(p, int) and self.job_ids
            else (p if isinstance(p, uuid.UUID) else uuid.uuid4())
            for p in picks
        ]

    @rule(
        data=st.data(),
        priority=st.sampled_from([None, 0, 2]),
        limit=st.sampled_from([None, 1, 2, 3]),
        due=st.booleans(),
    )
    def reschedule_jobs(
        self, data: st.DataObject, priority: int | None, limit: int | None, due: bool
    ) -> None:
        ids = self._pick_ids(data)
        run_at = self.manager.now() - timedelta(seconds=1) if due else None
        before = {i: self.manager.get_job(i) for i in ids}
        try:
            changed = self.manager.reschedule_jobs(
                ids, run_at=run_at, priority=priority, max_attempts=limit
            )
        except InvalidArgumentError:
            assert limit is not None
            assert any(j is not None and j.attempts > limit for j in before.values())
            assert {i: self.manager.get_job(i) for i in ids} == before
            return
        assert all(j.attempts <= j.max_attempts for j in changed)

    @rule(task=st.sampled_from([None, *TASKS]), limit=st.sampled_from([None, 2]))
    def replay_failed_jobs(self, task: str | None, limit: int | None) -> None:
        try:
            replayed = self.manager.replay_failed_jobs(task_identifier=task, max_attempts=limit)
        except PayloadValidationError:
            return
        assert all("replay" in j.flags and j.job_key_mode == "replace" for j in replayed)
        self.job_ids += [j.id for j in replayed]

    @rule(data=st.data())
    def permanently_fail_jobs(self, data: st.DataObject) -> None:
        failed = self.manager.permanently_fail_jobs(self._pick_ids(data), "given up")
        assert all(j.status == "exhausted" and j.last_error == "given up" for j in failed)

    @rule(which=st.sampled_from([None, (), ("w1",), ("w2", "w3")]))
    def force_unlock_jobs(self, which: tuple[str, ...] | None) -> None:
        unlocked = self.manager.force_unlock_jobs(None if which is None else list(which))
        if which == ():
            assert unlocked == []

    @rule(which=st.sampled_from([None, (), ("qa",), ("qa", "qb")]))
    def force_unlock_queues(self, which: tuple[str, ...] | None) -> None:
        unlocked = self.manager.force_unlock_queues(None if which is None else list(which))
        assert all(q.locked_at is None for q in unlocked)
        if which == ():
            assert unlocked == []

    # -- maintenance --------------------------------------------------------------------

    @rule(timeout=st.sampled_from([0, "1 hour"]))
    def reset_locked_jobs(self, timeout: Any) -> None:
        assert self.manager.reset_locked_jobs(lock_timeout=timeout) >= 0

    @rule()
    def gc(self) -> None:
        assert self.manager.gc_job_history() >= 0
        assert self.manager.gc_job_queues() >= 0
        assert self.manager.gc_task_identifiers(keep=0) >= 0

    @rule()
    def refill_rate_limits(self) -> None:
        assert self.manager.refill_rate_limits() >= 0

    # -- reading --------------------------------------------------------------------------

    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        stats = self.manager.stats()
        listed = self.manager.list_jobs(limit=1000)
        assert sum(stats.by_status.values()) == len(listed)
        for status, total in stats.by_status.items():
            assert total == sum(j.status == status for j in listed)
        for queue in self.manager.list_queues():
            assert queue.job_count == sum(j.queue_name == queue.queue_name for j in listed)
        for job_id in self._pick_ids(data):
            job = self.manager.get_job(job_id)
            assert job is None or job.id == job_id
            assert all(r.job_id == job_id for r in self.manager.job_history(job_id))
        assert len(self.manager.query_history(limit=5)) <= 5

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def queue_invariants_hold(self) -> None:
        with self.engine.connect() as conn:
            job_rows = list(conn.execute(sa.select(jobs)))
            queue_rows = list(conn.execute(sa.select(job_queues)))
            buckets = list(conn.execute(sa.select(rate_limits)))
            started = list(
                conn.execute(sa.select(job_history).where(job_history.c.status == "started"))
            )

        for job in job_rows:
            assert job.attempts <= job.max_attempts, job
            assert (
                (job.locked_at is None) == (job.locked_by is None) == (job.correlation_id is None)
            )

        locked_per_queue: dict[str, int] = {}
        for job in job_rows:
            if job.queue_name is not None and job.locked_at is not None:
                locked_per_queue[job.queue_name] = locked_per_queue.get(job.queue_name, 0) + 1
        queues = {q.queue_name: q for q in queue_rows}
        for name, count in locked_per_queue.items():
            assert name in queues and queues[name].locked_at is not None, name
            assert count == 1, (name, count)
        for name, queue in queues.items():
            if queue.locked_at is not None:
                assert locked_per_queue.get(name) == 1, f"queue {name} locked with no job"

        for bucket in buckets:
            assert 0 <= bucket.available_tokens <= bucket.capacity, bucket

        locked = {j.correlation_id: j for j in job_rows if j.locked_at is not None}
        for row in started:
            job = locked.get(row.correlation_id)
            assert job is not None and job.id == row.job_id, f"orphaned attempt {row.id}"
        assert {row.correlation_id for row in started} == set(locked)

        keys = [j.job_key for j in job_rows if j.job_key is not None]
        assert len(keys) == len(set(keys))


def test_random_operation_sequences_keep_the_invariants(module_engine: sa.Engine) -> None:
    class Machine(QueueMachine):
        engine = module_engine

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=30,
            stateful_step_count=80,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
