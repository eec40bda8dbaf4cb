"""An open transaction that enqueued a rate-limited job blocks no claim or refill of its bucket.

Inserting a job checks its foreign key to the bucket row, which locks that
row FOR KEY SHARE until the transaction ends. Claims and refills lock
buckets to spend or refill tokens; had they taken FOR UPDATE, every claim of
the bucket would wait for the enqueuer's commit — an application enqueues in
its own, possibly long, transaction — and an enqueue of several keys, whose
key-share locks come in insertion order, deadlocked with claims locking in
key order (the chaos suite's server log showed over a hundred "deadlock
detected" a run, each stalling the claims for the server's deadlock_timeout).
They take FOR NO KEY UPDATE (PostgreSQL), which key-share locks never block.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from queuekit import JobManager, JobSpec
from queuekit.models import rate_limits

WORKER = "w-locks"


@pytest.mark.parametrize("dialect", ["postgresql"])  # FOR NO KEY UPDATE is PostgreSQL's
def test_an_open_enqueue_blocks_no_claim_or_refill_of_its_bucket(
    manager: JobManager, engine: sa.Engine
) -> None:
    manager.register_rate_limit("api", 2, "1 minute")
    manager.add_jobs([JobSpec("t", {"n": n}, rate_limit_key="api") for n in range(3)])
    # A claimer that gives up, instead of waiting, on any row lock it cannot take.
    impatient = sa.create_engine(engine.url, connect_args={"options": "-c lock_timeout=3000"})
    claimer = JobManager(impatient)
    try:
        with engine.connect() as app, app.begin():
            manager.add_jobs([JobSpec("t", {"n": 3}, rate_limit_key="api")], session=app)
            # The application's transaction stays open while a worker claims and refills.
            assert len(claimer.get_jobs(WORKER, batch_size=5)) == 2
            with impatient.begin() as conn:
                conn.execute(
                    sa.update(rate_limits)
                    .where(rate_limits.c.key == "api")
                    .values(next_refill_at=sa.func.now() - timedelta(seconds=1))
                )
            assert claimer.refill_rate_limits() == 1
            assert len(claimer.get_jobs(WORKER, batch_size=5)) == 1
        bucket = manager.get_rate_limit("api")
        assert bucket is not None and bucket.available_tokens == 1
    finally:
        impatient.dispose()
