"""Concurrent claimers racing over one table: exactly-once claims, serial queues, exact tokens.

Eight threads (four on SQLite, which has one writer at a time) each run their
own JobManager on the shared engine, claiming batches of 1 to 20 jobs and
completing them, over 2,000 jobs: half of them spread over 20 named queues,
and 100 carrying one rate-limited key whose bucket holds fewer tokens than
there are such jobs.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from conformance import fresh_database, row_counts
from races import Race, check_history

from queuekit import JobManager, JobSpec
from queuekit.models import rate_limits

JOBS = 2000
QUEUES = 20
KEYED = 100
TOKENS = 30
#: Seconds a race may take before the test gives up (a hang would be a bug, not slowness).
DEADLINE = 120.0


def _specs() -> list[JobSpec]:
    specs = []
    for n in range(JOBS):
        queue = f"queue-{(n // 2) % QUEUES}" if n % 2 == 0 else None
        # Half the keyed jobs sit in named queues too.
        key = "api" if n % (2 * JOBS // KEYED) in (1, 2) else None
        specs.append(JobSpec("race", {"n": n}, queue_name=queue, rate_limit_key=key))
    return specs


class ClaimRace(Race):
    """One race of claimers; also counts the rate-limited jobs claimed."""

    def __init__(self, engine: sa.Engine, expected: int) -> None:
        super().__init__(engine, expected)
        self.keyed_claims = 0

    def record(self, claimed: list[Any]) -> None:
        with self.lock:
            self.keyed_claims += sum(1 for job in claimed if job.rate_limit_key is not None)
            self.add_claimed(claimed)


def _claimer(race: ClaimRace, index: int) -> None:
    manager = JobManager(race.engine)
    worker = f"racer-{index}"
    rng = random.Random(index)
    try:
        while not race.done.is_set():
            claimed = manager.get_jobs(worker, batch_size=rng.randint(1, 20))
            race.record(claimed)
            if not claimed:
                race.done.wait(0.005)
                continue
            race.check_queues()
            done = manager.complete_jobs(worker, claimed, 1)
            assert [job.id for job in done] == [job.id for job in claimed]
    except BaseException as error:
        with race.lock:
            race.errors.append(error)
        race.done.set()


def _run_race(engine: sa.Engine, threads: int, expected: int) -> ClaimRace:
    race = ClaimRace(engine, expected)
    workers = [threading.Thread(target=_claimer, args=(race, i)) for i in range(threads)]
    for worker in workers:
        worker.start()
    finished = race.done.wait(DEADLINE)
    race.done.set()
    for worker in workers:
        worker.join()
    assert race.errors == [], race.errors[:3]
    assert finished, f"only {len(race.claimed)} of {expected} jobs claimed"
    return race


def _race_over_the_jobs(engine: sa.Engine, threads: int) -> None:
    manager = JobManager(engine)
    manager.register_rate_limit("api", TOKENS, "1 hour")
    added = manager.add_jobs(_specs())
    keyed = {job.id for job in added if job.rate_limit_key is not None}
    assert len(keyed) == KEYED

    # First race: every job without the key, and exactly TOKENS jobs with it.
    first = _run_race(engine, threads, JOBS - KEYED + TOKENS)
    assert len(first.claimed) == len(set(first.claimed)) == JOBS - KEYED + TOKENS
    assert first.keyed_claims == TOKENS
    assert first.double_locked == []
    assert manager.get_rate_limit("api").available_tokens == 0  # type: ignore[union-attr]
    assert manager.get_jobs("late-comer", batch_size=20) == []

    # The window passes: racing claimers refill the bucket once, and take TOKENS more.
    with engine.begin() as conn:
        conn.execute(
            sa.update(rate_limits)
            .where(rate_limits.c.key == "api")
            .values(next_refill_at=rate_limits.c.last_refill_at)
        )
    second = _run_race(engine, threads, TOKENS)
    assert len(second.claimed) == TOKENS and second.keyed_claims == TOKENS
    assert set(first.claimed).isdisjoint(second.claimed)
    assert manager.get_rate_limit("api").available_tokens == 0  # type: ignore[union-attr]

    claimed = first.claimed + second.claimed
    assert len(check_history(engine, claimed)) == QUEUES
    counts = row_counts(engine)
    assert counts["queuekit_jobs"] == KEYED - 2 * TOKENS
    assert all(q.locked_at is None for q in manager.list_queues())
    left = {job.id for job in manager.list_jobs(limit=1000)}
    assert left == keyed - set(claimed)


def test_eight_claimers_race_on_a_server(server_dialect: str, tmp_path: Path) -> None:
    with fresh_database(server_dialect, tmp_path) as engine:
        _race_over_the_jobs(engine, threads=8)


def test_four_claimers_race_on_sqlite(tmp_path: Path) -> None:
    with fresh_database("sqlite", tmp_path) as engine:
        _race_over_the_jobs(engine, threads=4)
