"""Hand-off: a settle that frees a named queue claims for the slot its job left, in one transaction.

``JobManager.finish_and_claim`` (what the worker's flusher calls) records
outcomes and then claims, in the same transaction, one job per named queue
those outcomes freed. The claim is an ordinary one: claim order across
named-queue and plain jobs, the worker's task list, paused tasks and rate
limits all apply, every claimed job gets its ``started`` history row, and
no named queue ever has two locked jobs, under any concurrency.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from conformance import counting, fresh_database, notifications
from races import Race, check_history

from queuekit import JobManager, JobSpec
from queuekit.models import job_queues
from queuekit.repository import Outcome
from queuekit.types import Job
from queuekit.worker import Worker

W1, W2 = "w1", "w2"
#: Seconds a race may take before the test gives up (a hang would be a bug, not slowness).
DEADLINE = 120.0


def settle(
    manager: JobManager,
    worker: str,
    done: list[Job],
    *,
    slots: int = 1,
    tasks: list[str] | None = None,
) -> tuple[list[Job], list[Job]]:
    """Complete ``done`` and hand off; the jobs recorded and the jobs claimed."""
    outcomes = [Outcome(job, "completed", 1) for job in done]
    finished, claimed = manager.finish_and_claim(
        worker,
        outcomes,
        slots=slots,
        task_identifiers=tasks,
        forbidden_flags=None,
        history_retention="1 day",
    )
    return [f.job for f in finished], claimed


def queue_holder(manager: JobManager, name: str) -> str | None:
    with manager.engine.connect() as conn:
        select = sa.select(job_queues.c.locked_by).where(job_queues.c.queue_name == name)
        return conn.execute(select).scalar_one()


def test_a_freed_queue_hands_its_next_job_to_the_settling_worker(manager: JobManager) -> None:
    first, second, third = manager.add_jobs(
        [JobSpec("step", {"n": n}, queue_name="serial") for n in range(3)]
    )
    [claimed] = manager.get_jobs(W1, batch_size=5)
    assert claimed.id == first.id

    recorded, [handed] = settle(manager, W1, [claimed])

    assert [job.id for job in recorded] == [first.id]
    assert manager.get_job(first.id) is None  # completed
    assert handed.id == second.id and handed.attempts == 1
    assert handed.correlation_id is not None
    assert queue_holder(manager, "serial") == W1  # held again, by the settling worker
    [opened] = manager.job_history(second.id)
    assert (opened.status, opened.worker_id) == ("started", W1)
    assert opened.correlation_id == handed.correlation_id
    assert manager.get_jobs(W2, batch_size=5) == []  # the queue is taken: nothing for others

    # The handed-off claim is an ordinary one: its outcome records, and hands on.
    _, [last] = settle(manager, W1, [handed])
    assert last.id == third.id
    assert settle(manager, W1, [last]) == ([last], [])  # nothing left: no claim
    assert [h.status for h in manager.job_history(second.id)] == ["completed"]
    assert queue_holder(manager, "serial") is None


def test_the_hand_off_keeps_claim_order_across_plain_and_queued_jobs(manager: JobManager) -> None:
    queued = manager.add_jobs([JobSpec("step", {"n": n}, queue_name="serial") for n in range(3)])
    [claimed] = manager.get_jobs(W1, batch_size=1)
    assert claimed.id == queued[0].id
    urgent = manager.add_job("step", {"plain": True}, priority=-1)

    # A plain job comes first in claim order: the freed slot takes it, not the queue's job.
    _, [handed] = settle(manager, W1, [claimed])
    assert handed.id == urgent.id
    assert queue_holder(manager, "serial") is None  # freed, and free for anyone
    [other] = manager.get_jobs(W2, batch_size=5)
    assert other.id == queued[1].id

    # The queue's job comes first: taken before a later plain job.
    later_plain = manager.add_job("step", {"plain": True})
    _, [next_queued] = settle(manager, W2, [other])
    assert next_queued.id == queued[2].id
    assert manager.get_job(later_plain.id).locked_at is None  # type: ignore[union-attr]


def test_the_hand_off_claims_no_more_than_its_slots_one_per_freed_queue(
    manager: JobManager,
) -> None:
    manager.add_jobs(
        [JobSpec("step", {"q": q, "n": n}, queue_name=q) for n in range(2) for q in ("a", "b", "c")]
    )
    manager.add_jobs([JobSpec("step", {"plain": n}) for n in range(5)])
    claimed = manager.get_jobs(W1, batch_size=3)
    assert sorted(job.queue_name for job in claimed) == ["a", "b", "c"]  # type: ignore[type-var]

    _, handed = settle(manager, W1, claimed, slots=2)
    assert len(handed) == 2  # two slots, though three queues were freed
    _, none = settle(manager, W1, handed, slots=0)
    assert none == []  # no slot kept: a plain settle
    queues = [job.queue_name for job in handed]
    assert len(set(queues)) == 2 and None not in queues

    # Plain outcomes free no queue: nothing to hand off.
    [plain] = manager.get_jobs(W2, batch_size=1, max_queued=0)
    assert settle(manager, W2, [plain], slots=4) == ([plain], [])


def test_the_hand_off_honours_the_task_list_pauses_and_rate_limits(manager: JobManager) -> None:
    manager.register_rate_limit("api", 1, "1 hour")
    first = manager.add_job("step", {"n": 0}, queue_name="serial")
    manager.add_job("other", {"n": 1}, queue_name="serial")
    [claimed] = manager.get_jobs(W1, batch_size=1)
    assert claimed.id == first.id

    # The worker does not run the next job's task: nothing is claimed, the queue is free.
    assert settle(manager, W1, [claimed], tasks=["step"]) == ([claimed], [])
    assert queue_holder(manager, "serial") is None

    # A paused task's job is not handed off.
    again = manager.add_job("step", {"n": 2}, queue_name="paused-q")
    manager.add_job("paused", {"n": 3}, queue_name="paused-q")
    manager.pause_tasks(["paused"])
    [claimed] = manager.get_jobs(W1, batch_size=1, task_identifiers=["step"])
    assert claimed.id == again.id
    assert settle(manager, W1, [claimed], tasks=["step", "paused"]) == ([claimed], [])

    # A job whose bucket is empty is not handed off, and spends no token it lacks.
    keyed = [
        manager.add_job("step", {"n": n}, queue_name="keyed", rate_limit_key="api") for n in (4, 5)
    ]
    [claimed] = manager.get_jobs(W1, batch_size=1, task_identifiers=["step"])
    assert claimed.id == keyed[0].id
    assert settle(manager, W1, [claimed], tasks=["step"]) == ([claimed], [])
    assert manager.get_rate_limit("api").available_tokens == 0  # type: ignore[union-attr]
    assert manager.get_job(keyed[1].id).locked_at is None  # type: ignore[union-attr]


def test_an_outcome_the_worker_no_longer_owns_hands_nothing_off(manager: JobManager) -> None:
    manager.add_jobs([JobSpec("step", {"n": n}, queue_name="serial") for n in range(2)])
    [claimed] = manager.get_jobs(W1, batch_size=1)
    released = manager.release_jobs(W1, [claimed])  # the claim is gone
    assert [job.id for job in released] == [claimed.id]
    assert settle(manager, W1, [claimed]) == ([], [])
    assert [j.id for j in manager.get_jobs(W2, batch_size=5)] == [claimed.id]


class HandoffRace(Race):
    """Racing settlers; also counts the jobs that came by hand-off."""

    def __init__(self, engine: sa.Engine, expected: int) -> None:
        super().__init__(engine, expected)
        self.handed = 0

    def record(self, claimed: list[Job], *, handed: bool) -> None:
        with self.lock:
            if handed:
                self.handed += len(claimed)
            self.add_claimed(claimed)


def _settler(race: HandoffRace, index: int) -> None:
    """Claim a few jobs, then keep settling them and running what each settle hands off."""
    manager = JobManager(race.engine)
    worker = f"settler-{index}"
    rng = random.Random(index)
    held: list[Job] = []
    try:
        while not race.done.is_set():
            if not held:
                held = manager.get_jobs(worker, batch_size=rng.randint(1, 6))
                race.record(held, handed=False)
                if not held:
                    race.done.wait(0.005)
                    continue
            race.check_queues()
            batch, held = held, []
            done = [Outcome(job, "completed", 1) for job in batch]
            kept = sum(1 for job in batch if job.queue_name is not None)
            finished, handed = manager.finish_and_claim(
                worker,
                done,
                slots=rng.randint(0, kept),
                task_identifiers=None,
                forbidden_flags=None,
                history_retention="1 day",
            )
            assert sorted(f.job.id for f in finished) == sorted(job.id for job in batch)
            race.record(handed, handed=True)
            held = handed
        # Every job is claimed: settle what this settler still holds.
        left = manager.finish_jobs(worker, [Outcome(job, "completed", 1) for job in held])
        assert len(left) == len(held)
    except BaseException as error:
        with race.lock:
            race.errors.append(error)
        race.done.set()


def _race(engine: sa.Engine, threads: int) -> None:
    manager = JobManager(engine)
    count, queues = 600, 6
    specs = [
        JobSpec("race", {"n": n}, queue_name=f"q-{n % queues}" if n % 3 else None)
        for n in range(count)
    ]
    manager.add_jobs(specs)
    race = HandoffRace(engine, count)
    settlers = [threading.Thread(target=_settler, args=(race, i)) for i in range(threads)]
    for settler in settlers:
        settler.start()
    finished = race.done.wait(DEADLINE)
    race.done.set()
    for settler in settlers:
        settler.join()
    assert race.errors == [], race.errors[:3]
    assert finished, f"only {len(race.claimed)} of {count} jobs claimed"
    assert len(race.claimed) == len(set(race.claimed)) == count
    assert race.double_locked == []
    assert race.handed > 0  # hand-offs happened

    check_history(engine, race.claimed)
    assert all(q.locked_at is None for q in manager.list_queues())


def test_racing_settlers_never_lock_two_jobs_of_a_queue_on_a_server(
    server_dialect: str, tmp_path: Path
) -> None:
    with fresh_database(server_dialect, tmp_path) as engine:
        _race(engine, threads=6)


def test_racing_settlers_never_lock_two_jobs_of_a_queue_on_sqlite(tmp_path: Path) -> None:
    with fresh_database("sqlite", tmp_path) as engine:
        _race(engine, threads=3)


def test_a_worker_hands_a_queue_on_from_its_own_settles(manager: JobManager) -> None:
    """With one slot, each of a queue's next jobs comes from the settle of the one before."""
    added = manager.add_jobs([JobSpec("step", {"n": n}, queue_name="serial") for n in range(5)])
    handed: list[int] = []
    real = manager.finish_and_claim

    def counted(*args: Any, **kwargs: Any) -> Any:
        finished, claimed = real(*args, **kwargs)
        handed.append(len(claimed))
        return finished, claimed

    manager.finish_and_claim = counted  # type: ignore[method-assign]
    ran: list[int] = []
    claimed_events: list[Any] = []
    worker = Worker(
        manager,
        {"step": lambda payload, ctx: ran.append(payload["n"])},
        concurrency=1,
        maintenance=False,
        poll_interval="0.05 seconds",
    )
    worker.on("job/claimed", claimed_events.append)
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while manager.list_jobs(limit=10) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        worker.stop()
    assert ran == [0, 1, 2, 3, 4]
    assert sum(handed) == 4  # every job after the first came from the settle before it
    assert worker.stats.claimed == 5 and worker.stats.completed == 5
    assert sorted(e.data["job_id"] for e in claimed_events) == sorted(j.id for j in added)
    assert manager.list_jobs(limit=10) == []


def test_a_hand_off_costs_a_settle_and_a_claim_whatever_the_batch(manager: JobManager) -> None:
    """The statements of the settle plus those of one claim, the same for any batch size."""
    counts: list[tuple[int, int]] = []
    for size in (1, 5, 20):
        prefix = f"b{size}-"
        manager.add_jobs(
            [
                JobSpec("t", {"n": n}, queue_name=f"{prefix}{q}")
                for n in range(3)
                for q in range(size)
            ]
        )
        first = manager.get_jobs(W1, batch_size=size)
        assert {job.queue_name for job in first} == {f"{prefix}{q}" for q in range(size)}
        with counting(manager.engine) as together:
            _, second = settle(manager, W1, first, slots=size)
        assert len(second) == size
        # The same work in two transactions: a settle, then a claim.
        with counting(manager.engine) as apart:
            manager.complete_jobs(W1, second, 1)
            third = manager.get_jobs(W1, batch_size=size, max_queued=size)
        assert len(third) == size
        manager.complete_jobs(W1, third, 1)
        counts.append((together.count, apart.count))
    assert len(set(counts)) == 1, counts
    together_count, apart_count = counts[0]
    # No statement more than the two apart (SQLite sends one BEGIN fewer).
    assert apart_count - 1 <= together_count <= apart_count, counts


def test_a_hand_off_wakes_other_workers_only_for_a_queue_it_did_not_take(
    tmp_path: Path,
) -> None:
    with fresh_database("postgresql", tmp_path) as engine:  # LISTEN/NOTIFY exists only there
        _wakes_only_for_a_queue_not_taken(JobManager(engine))


def _wakes_only_for_a_queue_not_taken(manager: JobManager) -> None:
    queued = manager.add_jobs([JobSpec("t", {"n": n}, queue_name="serial") for n in range(3)])
    [claimed] = manager.get_jobs(W1, batch_size=1)
    with notifications(manager.engine) as delivered:
        _, [handed] = settle(manager, W1, [claimed])
        assert handed.id == queued[1].id
        assert len(delivered()) == 0  # the queue was taken again at once: nobody to wake
        urgent = manager.add_job("t", {"plain": True}, priority=-1)
        assert len(delivered()) == 1  # (the enqueue's own wake-up)
        _, [plain] = settle(manager, W1, [handed])
        assert plain.id == urgent.id
        assert len(delivered()) == 1  # the queue is free with a job in it: wake the others
    [successor] = manager.get_jobs(W2, batch_size=5)
    assert successor.id == queued[2].id


def test_a_hand_off_also_claims_what_the_worker_wants_besides(manager: JobManager) -> None:
    """``more`` jobs beyond the kept slots, of which ``more_queued`` may be in named queues."""
    manager.add_jobs([JobSpec("t", {"q": q}, queue_name=q) for q in ("a", "a", "b", "c")])
    plain = manager.add_jobs([JobSpec("t", {"plain": n}) for n in range(3)])
    [first, b_job, c_job] = manager.get_jobs(W1, batch_size=3, max_queued=3)
    assert [j.queue_name for j in (first, b_job, c_job)] == ["a", "b", "c"]
    assert manager.complete_jobs(W1, [b_job, c_job], 1)  # b and c are empty now

    outcomes = [Outcome(first, "completed", 1)]
    _, claimed = manager.finish_and_claim(
        W1,
        outcomes,
        slots=1,
        task_identifiers=None,
        forbidden_flags=None,
        history_retention="1 day",
        more=2,
        more_queued=0,
    )
    # The freed queue's next job for the kept slot, then two plain jobs in claim order.
    assert [(j.queue_name, j.payload) for j in claimed] == [
        ("a", {"q": "a"}),
        (None, {"plain": 0}),
        (None, {"plain": 1}),
    ]
    assert manager.get_job(plain[2].id).locked_at is None  # type: ignore[union-attr]
    assert {h.status for j in claimed for h in manager.job_history(j.id)} == {"started"}


def test_a_claim_cut_short_by_the_queue_cap_claims_again_when_a_plain_job_frees_its_slot(
    manager: JobManager,
) -> None:
    # One slot and a prefetch of one: while the second plain job runs, the
    # worker claims for its prefetch only, with no slot to start a queued job
    # in (max_queued 0), and comes back short. The queued job is claimable as
    # soon as that plain job's slot frees; with an hour's poll and nothing to
    # notify, only the freed slot can send the worker to claim it.
    gates = {0: threading.Event(), 1: threading.Event()}
    ran: list[str] = []

    def step(payload: dict[str, Any], ctx: Any) -> None:
        ran.append(payload["name"])
        gate = gates.get(payload.get("gate", -1))
        if gate is not None:
            assert gate.wait(DEADLINE)

    manager.add_jobs(
        [
            JobSpec("step", {"name": "plain-1", "gate": 0}, priority=0),
            JobSpec("step", {"name": "plain-2", "gate": 1}, priority=1),
            JobSpec("step", {"name": "queued"}, priority=2, queue_name="serial"),
        ]
    )
    worker = Worker(
        manager,
        {"step": step},
        concurrency=1,
        prefetch=1,
        maintenance=False,
        poll_interval="1 hour",
    )
    worker.start()
    try:
        deadline = time.monotonic() + DEADLINE
        while ran != ["plain-1"] and time.monotonic() < deadline:
            time.sleep(0.01)
        gates[0].set()
        while ran != ["plain-1", "plain-2"] and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # the prefetch claim, short, is made while plain-2 runs
        gates[1].set()
        while manager.list_jobs(limit=10) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        gates[0].set()
        gates[1].set()
        worker.stop()
    assert ran == ["plain-1", "plain-2", "queued"]
    assert manager.list_jobs(limit=10) == []
