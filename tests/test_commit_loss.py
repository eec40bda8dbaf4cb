"""A COMMIT whose answer is lost never makes queuekit do the work twice.

queuekit retries its own transactions (``session=None``) after errors that
are known to have rolled them back. When the connection is lost while COMMIT
is in flight, the outcome is unknown: an enqueue and a claim look at the data
to find out, every other call raises :class:`CommitUnknownError`. The
proxy in ``tests/proxy.py`` loses a COMMIT either after the server did it or
before the server got it. PostgreSQL and MariaDB (SQLite has no network).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from proxy import CommitCuttingProxy

from queuekit import CommitUnknownError, JobManager, JobSpec
from queuekit.models import job_history, jobs, rate_limits

WORKER = "worker-a"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=["postgresql", "mariadb"])
def dialect(request: pytest.FixtureRequest) -> str:
    """Server dialects only: the COMMIT is lost on the way over the network."""
    return str(request.param)


@pytest.fixture
def proxy(engine: sa.Engine) -> Iterator[CommitCuttingProxy]:
    port = engine.url.port or (5432 if engine.dialect.name == "postgresql" else 3306)
    with CommitCuttingProxy(port) as cutting:
        yield cutting


@pytest.fixture
def proxied(engine: sa.Engine, proxy: CommitCuttingProxy) -> Iterator[JobManager]:
    """A manager whose connections go through the proxy."""
    url = engine.url.set(host="127.0.0.1", port=proxy.port)
    through = sa.create_engine(url)
    yield JobManager(through)
    through.dispose()


def job_rows(engine: sa.Engine) -> list[sa.Row[tuple[object, ...]]]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(jobs.c.id, jobs.c.locked_by, jobs.c.correlation_id)))


@pytest.mark.parametrize("landed", [True, False], ids=["landed", "lost"])
def test_add_job_makes_exactly_one_row(
    engine: sa.Engine, proxy: CommitCuttingProxy, proxied: JobManager, landed: bool
) -> None:
    proxy.cut_next_commit(landed=landed)
    job = proxied.add_job("mail", {"to": "a@example.com"})
    assert proxy.cuts == 1
    assert [row.id for row in job_rows(engine)] == [job.id]


@pytest.mark.parametrize("landed", [True, False], ids=["landed", "lost"])
def test_add_jobs_with_keys_makes_each_job_once(
    engine: sa.Engine, proxy: CommitCuttingProxy, proxied: JobManager, landed: bool
) -> None:
    proxy.cut_next_commit(landed=landed)
    added = proxied.add_jobs(
        [JobSpec("mail", {"n": 1}), JobSpec("mail", {"n": 2}, job_key="k")]
        + [JobSpec("mail", {"n": n}) for n in range(3, 300)]  # the bulk-load path too
    )
    assert proxy.cuts == 1
    assert sorted(row.id for row in job_rows(engine)) == sorted(job.id for job in added)


def test_add_job_after_a_landed_commit_of_a_job_already_done(
    engine: sa.Engine, proxy: CommitCuttingProxy, proxied: JobManager
) -> None:
    """A job completed and deleted before the check still counts as saved (its history)."""
    checker = JobManager(engine)
    original = proxied.transactions.run

    def run_then_work_off(session, work, *, confirm=None):  # type: ignore[no-untyped-def]
        def confirm_after_work_done(conn, result):  # type: ignore[no-untyped-def]
            claimed = checker.get_jobs("other")
            checker.complete_jobs("other", claimed, 1)
            assert confirm is not None
            return confirm(conn, result)

        return original(session, work, confirm=confirm and confirm_after_work_done)

    proxied.transactions.run = run_then_work_off  # type: ignore[method-assign]
    proxy.cut_next_commit(landed=True)
    job = proxied.add_job("mail", {})
    assert job_rows(engine) == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(job_history.c.job_id)).scalars().all() == [job.id]


@pytest.mark.parametrize("landed", [True, False], ids=["landed", "lost"])
def test_get_jobs_never_leaves_an_unknown_lock(
    engine: sa.Engine, proxy: CommitCuttingProxy, proxied: JobManager, landed: bool
) -> None:
    checker = JobManager(engine)
    checker.add_jobs([JobSpec("mail", {"n": n}) for n in range(3)])
    proxy.cut_next_commit(landed=landed)
    claimed = proxied.get_jobs(WORKER, batch_size=1)
    assert proxy.cuts == 1
    assert len(claimed) == 1
    locked = [row for row in job_rows(engine) if row.locked_by is not None]
    assert [(row.id, row.correlation_id) for row in locked] == [
        (claimed[0].id, claimed[0].correlation_id)
    ]
    assert checker.complete_jobs(WORKER, claimed, 1) != []


def test_other_calls_raise_commit_unknown_and_never_repeat(
    engine: sa.Engine, proxy: CommitCuttingProxy, proxied: JobManager
) -> None:
    proxy.cut_next_commit(landed=True)
    with pytest.raises(CommitUnknownError, match="check the data"):
        proxied.register_rate_limit("api", 3, "1 minute")
    assert proxy.commits_seen == 1  # not retried
    with engine.connect() as conn:
        assert conn.execute(sa.select(rate_limits.c.key)).scalars().all() == ["api"]


def test_reads_return_their_result_after_a_lost_commit(
    proxy: CommitCuttingProxy, proxied: JobManager
) -> None:
    job = proxied.add_job("mail", {})
    proxy.cut_next_commit(landed=True)
    assert [j.id for j in proxied.list_jobs()] == [job.id]


@pytest.mark.parametrize("landed", [True, False], ids=["landed", "lost"])
def test_complete_jobs_reports_what_it_completed(
    engine: sa.Engine, proxy: CommitCuttingProxy, proxied: JobManager, landed: bool
) -> None:
    proxied.add_job("mail", {})
    claimed = proxied.get_jobs(WORKER)
    proxy.cut_next_commit(landed=landed)
    assert [job.id for job in proxied.complete_jobs(WORKER, claimed, 5)] == [claimed[0].id]
    assert proxy.cuts == 1
    assert job_rows(engine) == []
    with engine.connect() as conn:
        statuses = conn.execute(sa.select(job_history.c.status)).scalars().all()
    assert statuses == ["completed"]
