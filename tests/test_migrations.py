"""queuekit's migrations: they build exactly the models' schema, on every dialect."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from queuekit import migrations
from queuekit.compat import check_server_version
from queuekit.errors import SchemaNotMigratedError, UnsupportedDatabaseError
from queuekit.models import metadata

REPO = Path(__file__).resolve().parent.parent
QUEUEKIT_TABLES = set(metadata.tables)


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def _plain(value: Any) -> Any:
    """Reflected schema details as comparable plain values."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, sa.types.TypeEngine):
        return repr(value)
    if isinstance(value, sa.sql.ClauseElement):
        return str(value)
    return value


def _snapshot(engine: sa.Engine) -> dict[str, Any]:
    """Everything reflection tells about queuekit's tables."""
    inspector = sa.inspect(engine)

    def by_name(items: list[Any]) -> list[Any]:
        return sorted(_plain(items), key=lambda item: item["name"] or "")

    return {
        table: {
            "columns": _plain(inspector.get_columns(table)),
            "primary_key": _plain(inspector.get_pk_constraint(table)),
            "foreign_keys": by_name(inspector.get_foreign_keys(table)),
            "indexes": by_name(inspector.get_indexes(table)),
            "unique": by_name(inspector.get_unique_constraints(table)),
            "checks": by_name(inspector.get_check_constraints(table)),
        }
        for table in sorted(QUEUEKIT_TABLES)
    }


def test_head_has_no_autogenerate_differences(empty_engine: sa.Engine) -> None:
    migrations.upgrade(empty_engine)
    with empty_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts=migrations._context_options())
        assert compare_metadata(context, metadata) == []


def test_migrations_build_what_create_all_builds(empty_engine: sa.Engine) -> None:
    # Autogenerate ignores partial-index predicates and, on MySQL/MariaDB,
    # DATETIME precision; comparing reflections of both schemas catches those.
    metadata.create_all(empty_engine)
    from_models = _snapshot(empty_engine)
    metadata.drop_all(empty_engine)
    migrations.upgrade(empty_engine)
    assert _snapshot(empty_engine) == from_models


def test_upgrade_downgrade_upgrade(empty_engine: sa.Engine) -> None:
    migrations.upgrade(empty_engine)
    assert _tables(empty_engine) == QUEUEKIT_TABLES | {migrations.VERSION_TABLE}
    migrations.downgrade(empty_engine, "base")
    assert _tables(empty_engine) <= {migrations.VERSION_TABLE}
    assert migrations.current(empty_engine) is None
    migrations.upgrade(empty_engine)
    assert migrations.current(empty_engine) == migrations.head()


def test_current_and_check(empty_engine: sa.Engine) -> None:
    assert migrations.current(empty_engine) is None
    with pytest.raises(SchemaNotMigratedError, match="queuekit db upgrade"):
        migrations.check(empty_engine)
    migrations.upgrade(empty_engine)
    assert migrations.current(empty_engine) == migrations.head() == "queuekit_0006"
    migrations.check(empty_engine)


def test_check_rejects_a_revision_it_does_not_know(empty_engine: sa.Engine) -> None:
    migrations.upgrade(empty_engine)
    with empty_engine.begin() as connection:
        connection.execute(sa.text(f"UPDATE {migrations.VERSION_TABLE} SET version_num = 'ffff'"))
    with pytest.raises(SchemaNotMigratedError, match="does not know"):
        migrations.check(empty_engine)


# MariaDB commits DDL implicitly, so only the transactional-DDL dialects apply.
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_upgrade_in_a_caller_transaction_that_rolls_back(
    dialect: str, empty_engine: sa.Engine
) -> None:
    with empty_engine.connect() as connection:
        transaction = connection.begin()
        migrations.upgrade(connection)
        assert connection.in_transaction()
        assert migrations.current(connection) == migrations.head()
        transaction.rollback()
    assert _tables(empty_engine) == set()


def test_upgrade_in_a_caller_transaction_that_commits(empty_engine: sa.Engine) -> None:
    with empty_engine.begin() as connection:
        migrations.upgrade(connection)
    migrations.check(empty_engine)


# SQLAlchemy 2 connections begin on first use: a caller that never called
# begin() still owns the transaction, and decides commit or rollback.
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_upgrade_and_downgrade_never_commit_a_connection_not_yet_begun(
    dialect: str, empty_engine: sa.Engine
) -> None:
    with empty_engine.connect() as connection:
        migrations.upgrade(connection)
        assert connection.in_transaction()
        connection.rollback()
    assert _tables(empty_engine) == set()
    migrations.upgrade(empty_engine)
    with empty_engine.connect() as connection:
        migrations.downgrade(connection, "base")
        assert connection.in_transaction()
        connection.rollback()
    migrations.check(empty_engine)


def test_upgrade_on_a_connection_not_yet_begun_commits_when_the_caller_does(
    empty_engine: sa.Engine,
) -> None:
    with empty_engine.connect() as connection:
        migrations.upgrade(connection)
        connection.commit()
    migrations.check(empty_engine)


def test_check_and_current_leave_the_callers_transaction_open(empty_engine: sa.Engine) -> None:
    migrations.upgrade(empty_engine)
    with empty_engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE app_notes (id INTEGER PRIMARY KEY)"))
    with empty_engine.connect() as connection:
        connection.execute(sa.text("INSERT INTO app_notes (id) VALUES (1)"))
        migrations.check(connection)
        assert migrations.current(connection) == migrations.head()
        assert connection.in_transaction()
        connection.rollback()
        assert connection.execute(sa.text("SELECT count(*) FROM app_notes")).scalar() == 0


def test_host_helpers_exclude_queuekit_names() -> None:
    for name in [*QUEUEKIT_TABLES, migrations.VERSION_TABLE]:
        assert not migrations.include_name(name, "table", {"schema_name": None})
        assert not migrations.include_object(metadata.tables.get(name), name, "table", True, None)
    assert migrations.include_name("users", "table", {"schema_name": None})
    assert migrations.include_name("ix_users_email", "index", {"table_name": "users"})
    assert not migrations.include_name("ix_x", "index", {"table_name": "queuekit_jobs"})
    assert migrations.include_name("public", "schema", {})

    host = sa.MetaData()
    users = sa.Table("users", host, sa.Column("id", sa.Integer, primary_key=True))
    jobs = metadata.tables["queuekit_jobs"]
    assert migrations.include_object(users, "users", "table", False, None)
    assert migrations.include_object(users.c.id, "id", "column", False, None)
    assert not migrations.include_object(jobs.c.id, "id", "column", True, None)
    index = next(iter(jobs.indexes))
    assert not migrations.include_object(index, index.name, "index", True, None)


def test_host_autogenerate_leaves_queuekit_tables_alone(empty_engine: sa.Engine) -> None:
    migrations.upgrade(empty_engine)
    host = sa.MetaData()
    sa.Table("users", host, sa.Column("id", sa.Integer, primary_key=True))
    with empty_engine.connect() as connection:
        unfiltered = MigrationContext.configure(connection, opts={"target_metadata": host})
        removed = {diff[1].name for diff in compare_metadata(unfiltered, host)}
        assert QUEUEKIT_TABLES | {migrations.VERSION_TABLE} <= removed - {"users"}

        filtered = MigrationContext.configure(
            connection,
            opts={
                "target_metadata": host,
                "include_name": migrations.include_name,
                "include_object": migrations.include_object,
            },
        )
        diffs = compare_metadata(filtered, host)
        assert [(diff[0], diff[1].name) for diff in diffs] == [("add_table", "users")]


@pytest.mark.parametrize("dialect", ["postgresql"])
def test_named_schema_on_postgresql(dialect: str, empty_engine: sa.Engine) -> None:
    with empty_engine.begin() as connection:
        connection.execute(sa.text("CREATE SCHEMA tenant"))
    migrations.upgrade(empty_engine, schema="tenant")
    inspector = sa.inspect(empty_engine)
    assert set(inspector.get_table_names(schema="tenant")) == QUEUEKIT_TABLES | {
        migrations.VERSION_TABLE
    }
    assert inspector.get_table_names() == []
    migrations.check(empty_engine, schema="tenant")
    assert migrations.current(empty_engine) is None
    migrations.downgrade(empty_engine, "base", schema="tenant")
    assert set(sa.inspect(empty_engine).get_table_names(schema="tenant")) == {
        migrations.VERSION_TABLE
    }


def test_alembic_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {**os.environ, "QUEUEKIT_DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", "alembic.ini", "upgrade", "head"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    engine = sa.create_engine(url)
    migrations.check(engine)
    engine.dispose()


def test_script_location_holds_the_environment() -> None:
    assert (Path(migrations.script_location()) / "env.py").is_file()


@pytest.mark.parametrize(
    ("name", "is_mariadb", "version", "supported"),
    [
        ("postgresql", False, (12, 17), False),
        ("postgresql", False, (13, 0), True),
        ("sqlite", False, (3, 34, 1), False),
        ("sqlite", False, (3, 35, 0), True),
        ("mysql", True, (10, 5, 22, "MariaDB"), False),
        ("mysql", True, (10, 6, 0), True),
        ("mariadb", True, (11, 4, 2), True),
        ("mysql", False, (5, 7, 44), False),
        ("mysql", False, (8, 0, 36), True),
        ("oracle", False, (23, 0), False),
    ],
)
def test_check_server_version(
    name: str, is_mariadb: bool, version: tuple[Any, ...], supported: bool
) -> None:
    dialect = SimpleNamespace(name=name, is_mariadb=is_mariadb, server_version_info=version)
    connection: Any = SimpleNamespace(dialect=dialect)
    if supported:
        check_server_version(connection)
    else:
        with pytest.raises(UnsupportedDatabaseError):
            check_server_version(connection)


def test_stats_indexes_revision_downgrades_and_upgrades_with_jobs(
    empty_engine: sa.Engine,
) -> None:
    from queuekit import JobManager

    migrations.upgrade(empty_engine, "queuekit_0001")
    assert "ix_queuekit_jobs_task_identifier" in {
        index["name"] for index in sa.inspect(empty_engine).get_indexes("queuekit_jobs")
    }
    migrations.upgrade(empty_engine)
    manager = JobManager(empty_engine)
    manager.add_job("mail", {}, queue_name="q")
    migrations.downgrade(empty_engine, "queuekit_0001")
    migrations.upgrade(empty_engine)
    names = {index["name"] for index in sa.inspect(empty_engine).get_indexes("queuekit_jobs")}
    assert {"ix_queuekit_jobs_task_queue", "ix_queuekit_jobs_exhausted"} <= names
    assert "ix_queuekit_jobs_task_identifier" not in names
    assert manager.stats().by_queue["q"]["available"] == 1


def test_workers_revision_downgrades_with_cancelled_history(empty_engine: sa.Engine) -> None:
    from queuekit import JobManager

    migrations.upgrade(empty_engine)
    manager = JobManager(empty_engine)
    job = manager.add_job("mail", {})
    manager.cancel_jobs([job.id])
    manager.pause_tasks(["mail"])
    manager.register_worker("w", concurrency=1, heartbeat_interval=30)
    migrations.downgrade(empty_engine, "queuekit_0003")
    inspector = sa.inspect(empty_engine)
    assert "queuekit_workers" not in inspector.get_table_names()
    assert "paused_at" not in {
        c["name"] for c in inspector.get_columns("queuekit_task_identifiers")
    }
    with empty_engine.connect() as conn:
        statuses = conn.execute(sa.text("SELECT status, error_message FROM queuekit_job_history"))
        assert [tuple(row) for row in statuses] == [("failed", "cancelled")]
    migrations.upgrade(empty_engine)
    assert [r.status for r in manager.job_history(job.id)] == ["failed"]
    assert manager.list_workers() == []


def test_revisions_read_without_alembic_match_alembics_own_reading() -> None:
    # head() and the revision list come from the files without importing Alembic
    # (every command's start-up); Alembic's reading of the same files must agree.
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", migrations.script_location())
    scripts = ScriptDirectory.from_config(config)
    assert scripts.get_heads() == [migrations.head()]
    assert migrations._revision_parents() == {
        script.revision: script.down_revision for script in scripts.walk_revisions()
    }


def test_checking_the_schema_does_not_import_alembic(empty_url: str) -> None:
    probe = (
        "import sys, sqlalchemy as sa\n"
        "from queuekit import JobManager, migrations\n"
        f"engine = sa.create_engine({empty_url!r})\n"
        "JobManager(engine).add_job('t', {})\n"
        "assert migrations.current(engine) == migrations.head()\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'alembic'))\n"
    )
    engine = sa.create_engine(empty_url)
    migrations.upgrade(engine)
    engine.dispose()
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_dashboard_indexes_revision_downgrades_and_upgrades_with_jobs(
    empty_engine: sa.Engine,
) -> None:
    from queuekit import JobManager

    def indexes(table: str) -> dict[str, list[str]]:
        found = sa.inspect(empty_engine).get_indexes(table)
        return {str(index["name"]): list(index["column_names"]) for index in found}

    migrations.upgrade(empty_engine)
    manager = JobManager(empty_engine)
    job = manager.add_job("mail", {})
    migrations.downgrade(empty_engine, "queuekit_0005")
    assert "ix_queuekit_jobs_task_id" not in indexes("queuekit_jobs")
    assert "ix_queuekit_jobs_task_run_at" not in indexes("queuekit_jobs")
    history = indexes("queuekit_job_history")
    assert "ix_queuekit_job_history_task_status" not in history
    assert history["ix_queuekit_job_history_started_at"] == ["started_at"]
    migrations.upgrade(empty_engine)
    assert indexes("queuekit_jobs")["ix_queuekit_jobs_task_id"] == ["task_identifier", "id"]
    assert indexes("queuekit_job_history")["ix_queuekit_job_history_started_at"] == [
        "started_at",
        "status",
        "queue_time_ms",
        "execution_time_ms",
    ]
    assert [j.id for j in manager.list_jobs()] == [job.id]
