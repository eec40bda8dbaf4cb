"""queuekit in a named schema: one setting for migrations and every statement.

``migrations.upgrade(engine, schema="jobs")`` creates the schema when it is
missing and puts every table, the version table included, inside it;
``JobManager(engine, schema="jobs")`` qualifies every statement with it, so
nothing depends on ``search_path`` (W15) and two schemas in one database are
two independent queues, each with its own migration history (W16).
Mostly PostgreSQL; on MariaDB/MySQL a schema is a database, and the last test
shows the same setting works there.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import MYSQL_ADMIN_URL, create_database_url, require_server

from queuekit import JobError, JobManager, JobSpec, SchemaNotMigratedError, migrations
from queuekit.models import metadata

QUEUEKIT_TABLES = set(metadata.tables)
WORKER = "schema-worker"


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A fresh, empty PostgreSQL database."""
    yield from create_database_url("postgresql", tmp_path)


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[sa.Engine]:
    """An engine on that database."""
    engine = sa.create_engine(pg_url)
    yield engine
    engine.dispose()


def tables_by_schema(engine: sa.Engine) -> dict[str, set[str]]:
    """Every non-system schema of the database and the tables in it."""
    inspector = sa.inspect(engine)
    return {
        schema: set(inspector.get_table_names(schema=schema))
        for schema in inspector.get_schema_names()
        if schema != "information_schema"
    }


def count(engine: sa.Engine, schema: str, table: str) -> int:
    """Rows of ``schema.table``, read with an explicitly qualified statement."""
    with engine.connect() as conn:
        statement = sa.select(sa.func.count()).select_from(sa.table(table, schema=schema))
        return int(conn.execute(statement).scalar_one())


def test_everything_lives_in_the_named_schema(pg_engine: sa.Engine) -> None:
    assert "jobs" not in sa.inspect(pg_engine).get_schema_names()
    migrations.upgrade(pg_engine, schema="jobs")
    assert tables_by_schema(pg_engine) == {
        "public": set(),
        "jobs": QUEUEKIT_TABLES | {migrations.VERSION_TABLE},
    }
    assert migrations.current(pg_engine, schema="jobs") == migrations.head()
    assert migrations.current(pg_engine) is None

    manager = JobManager(pg_engine, schema="jobs")
    manager.register_task("email", schema={"type": "object", "required": ["to"]})
    manager.register_rate_limit("smtp", 10, "1 minute")
    first = manager.add_job("email", {"to": "a@example.com"}, rate_limit_key="smtp")
    second, third = manager.add_jobs(
        [
            JobSpec("email", {"to": "b@example.com"}, queue_name="mailbox"),
            JobSpec("email", {"to": "c@example.com"}, max_attempts=1),
        ]
    )
    claimed = manager.get_jobs(WORKER, batch_size=3)
    assert {job.id for job in claimed} == {first.id, second.id, third.id}
    by_id = {job.id: job for job in claimed}
    assert manager.complete_jobs(WORKER, [by_id[first.id], by_id[second.id]], 12) != []
    (failed,) = manager.fail_jobs(WORKER, [JobError(by_id[third.id], "smtp refused")], 3)
    assert failed.status == "exhausted"

    assert [r.status for r in manager.job_history(first.id)] == ["completed"]
    assert [r.status for r in manager.job_history(third.id)] == ["failed"]
    stats = manager.stats()
    assert stats.by_status == {"available": 0, "locked": 0, "exhausted": 1}
    (replayed,) = manager.replay_failed_jobs()
    assert "replay" in replayed.flags
    assert manager.get_rate_limit("smtp") is not None

    # The rows are where the qualified statements say, and nowhere else.
    assert count(pg_engine, "jobs", "queuekit_jobs") == 2  # the exhausted job and its replay
    assert count(pg_engine, "jobs", "queuekit_job_history") == 3
    assert tables_by_schema(pg_engine)["public"] == set()

    migrations.downgrade(pg_engine, "base", schema="jobs")
    assert tables_by_schema(pg_engine)["jobs"] == {migrations.VERSION_TABLE}


def test_statements_never_rely_on_search_path(pg_url: str) -> None:
    """A connection whose search_path names another queuekit schema still uses its own."""
    setup = sa.create_engine(pg_url)
    migrations.upgrade(setup, schema="tenant_a")
    migrations.upgrade(setup, schema="tenant_b")
    setup.dispose()
    misleading = sa.create_engine(pg_url, connect_args={"options": "-c search_path=tenant_b"})
    try:
        manager = JobManager(misleading, schema="tenant_a")
        job = manager.add_job("email", {"to": "a@example.com"})
        assert count(misleading, "tenant_a", "queuekit_jobs") == 1
        assert count(misleading, "tenant_b", "queuekit_jobs") == 0
        (claimed,) = manager.get_jobs(WORKER)
        assert claimed.id == job.id
        manager.complete_jobs(WORKER, [claimed], 1)
        assert count(misleading, "tenant_a", "queuekit_job_history") == 1
        assert count(misleading, "tenant_b", "queuekit_job_history") == 0
        # A bulk enqueue (COPY) lands in the named schema too.
        manager.add_jobs([JobSpec("email", {"to": f"{n}@example.com"}) for n in range(300)])
        assert count(misleading, "tenant_a", "queuekit_jobs") == 300
        assert count(misleading, "tenant_b", "queuekit_jobs") == 0
    finally:
        misleading.dispose()


def test_two_schemas_are_two_independent_queues(pg_engine: sa.Engine) -> None:
    migrations.upgrade(pg_engine, schema="tenant_a")
    # The second schema gets its own tables: its version table is its own (W16).
    assert migrations.current(pg_engine, schema="tenant_b") is None
    migrations.upgrade(pg_engine, schema="tenant_b")
    layout = tables_by_schema(pg_engine)
    assert layout["tenant_a"] == layout["tenant_b"] == QUEUEKIT_TABLES | {migrations.VERSION_TABLE}
    assert layout["public"] == set()

    a = JobManager(pg_engine, schema="tenant_a")
    b = JobManager(pg_engine, schema="tenant_b")
    job_a = a.add_job("email", {"to": "a@example.com"}, job_key="welcome", queue_name="q")
    job_b = b.add_job("email", {"to": "b@example.com"}, job_key="welcome", queue_name="q")
    # Same job key and queue name in both: neither replaces nor blocks the other.
    assert a.get_job(job_a.id) is not None
    assert b.get_job(job_a.id) is None
    (claimed_b,) = b.get_jobs(WORKER, batch_size=5)
    assert claimed_b.id == job_b.id
    (claimed_a,) = a.get_jobs(WORKER, batch_size=5)
    assert claimed_a.id == job_a.id
    b.complete_jobs(WORKER, [claimed_b], 1)
    assert a.stats().by_status["locked"] == 1
    assert b.stats().by_status == {"available": 0, "locked": 0, "exhausted": 0}
    assert [q.queue_name for q in a.list_queues()] == ["q"]

    # Each schema migrates on its own: taking one down leaves the other running.
    migrations.downgrade(pg_engine, "base", schema="tenant_b")
    with pytest.raises(SchemaNotMigratedError):
        JobManager(pg_engine, schema="tenant_b")
    assert a.complete_jobs(WORKER, [claimed_a], 1) != []
    migrations.check(pg_engine, schema="tenant_a")


def test_manager_checks_its_own_schema(pg_engine: sa.Engine) -> None:
    migrations.upgrade(pg_engine, schema="jobs")
    with pytest.raises(SchemaNotMigratedError, match="queuekit db upgrade"):
        JobManager(pg_engine)
    with pytest.raises(SchemaNotMigratedError, match="queuekit db upgrade"):
        JobManager(pg_engine, schema="other")
    JobManager(pg_engine, schema="jobs")


def test_upgrade_into_an_existing_schema(pg_engine: sa.Engine) -> None:
    """A schema the operator created (with its own grants) is used as it is."""
    with pg_engine.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA jobs"))
        conn.execute(sa.text("CREATE TABLE jobs.unrelated (id integer primary key)"))
    migrations.upgrade(pg_engine, schema="jobs")
    assert tables_by_schema(pg_engine)["jobs"] == QUEUEKIT_TABLES | {
        migrations.VERSION_TABLE,
        "unrelated",
    }
    JobManager(pg_engine, schema="jobs").add_job("email", {"to": "a@example.com"})


def test_mariadb_schema_is_another_database(tmp_path: Path) -> None:
    """On MariaDB the named schema is a database next to the application's."""
    require_server("mariadb")
    jobs_database = f"qk_jobs_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(MYSQL_ADMIN_URL, isolation_level="AUTOCOMMIT")
    for url in create_database_url("mariadb", tmp_path):
        engine = sa.create_engine(url)
        try:
            migrations.upgrade(engine, schema=jobs_database)
            inspector = sa.inspect(engine)
            assert inspector.get_table_names() == []
            assert set(inspector.get_table_names(schema=jobs_database)) == QUEUEKIT_TABLES | {
                migrations.VERSION_TABLE
            }
            manager = JobManager(engine, schema=jobs_database)
            job = manager.add_job("email", {"to": "a@example.com"})
            (claimed,) = manager.get_jobs(WORKER)
            assert manager.complete_jobs(WORKER, [claimed], 1) != []
            assert [r.status for r in manager.job_history(job.id)] == ["completed"]
            assert count(engine, jobs_database, "queuekit_job_history") == 1
        finally:
            engine.dispose()
            with admin.connect() as conn:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {jobs_database}"))
    admin.dispose()
