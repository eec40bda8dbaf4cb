"""queuekit inside a host application's Alembic set-up (SPEC §8), on SQLite and PostgreSQL.

The host is the small shop under ``tests/host_app``: its own models, two
Alembic environments and its own revisions. ``independent`` keeps queuekit's
revisions on their own lineage (version table ``queuekit_alembic_version``);
``merged`` runs them inside the shop's history through the ``queuekit``
branch label, with a shop revision that depends on queuekit's. Each test
works on a copy of the tree, since autogenerate writes revision files.

Also here: what ``JobManager`` says about databases in a state it cannot run
on (migrated by a newer queuekit, half-migrated, tables with no version).
"""

from __future__ import annotations

import json
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations.ops import MigrationScript
from alembic.script import Script
from alembic.util import CommandError
from click.testing import CliRunner
from sqlalchemy.orm import Session

from queuekit import JobManager, SchemaNotMigratedError, migrations
from queuekit.cli import cli
from queuekit.models import metadata as queuekit_metadata

HOST_APP = Path(__file__).resolve().parent / "host_app"
QUEUEKIT_TABLES = set(queuekit_metadata.tables)
SHOP_TABLES = {"customers", "orders"}
WORKER = "shop-worker"


@pytest.fixture(params=["sqlite", "postgresql"])
def dialect(request: pytest.FixtureRequest) -> str:
    """The two dialects SPEC §8 names for host applications."""
    return str(request.param)


@pytest.fixture
def host_tree(tmp_path: Path) -> Iterator[Path]:
    """A private copy of the shop's tree; ``sys.path`` restored after Alembic extended it."""
    tree = tmp_path / "host_app"
    shutil.copytree(HOST_APP, tree, ignore=shutil.ignore_patterns("__pycache__"))
    saved = list(sys.path)
    yield tree
    sys.path[:] = saved


def host_config(tree: Path, mode: str, url: str) -> Config:
    """The shop's own ``alembic.ini`` for ``mode``, pointed at ``url``.

    In ``merged`` mode the ini names queuekit's revisions as
    ``queuekit:_alembic/versions``, the path inside an installed wheel (the
    packaging test runs that very line); a source checkout keeps them in the
    repository's ``alembic/versions``, which :func:`versions_location` finds.
    """
    config = Config(str(tree / mode / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if mode == "merged":
        assert config.get_version_locations_list() == [
            str(tree / mode / "versions"),
            "queuekit:_alembic/versions",
        ]
        config.set_main_option(
            "version_locations", f"{tree / mode / 'versions'} {migrations.versions_location()}"
        )
    return config


def tables(engine: sa.Engine) -> set[str]:
    """Every table in the default schema."""
    return set(sa.inspect(engine).get_table_names())


def versions(engine: sa.Engine, table: str) -> set[str]:
    """The revisions a version table records."""
    with engine.connect() as conn:
        return set(conn.execute(sa.text(f"SELECT version_num FROM {table}")).scalars())


def autogenerate(config: Config, head: str = "head") -> MigrationScript:
    """Run the host's ``alembic revision --autogenerate`` and return what it proposed."""
    produced: list[MigrationScript] = []

    def capture(_context: Any, _revision: Any, directives: list[MigrationScript]) -> None:
        produced.extend(directives)

    command.revision(
        config, message="check", autogenerate=True, head=head, process_revision_directives=capture
    )
    (script,) = produced
    return script


def place_order(manager: JobManager, session: Session, email: str) -> uuid.UUID:
    """The shop's business write and its e-mail job, in the caller's transaction."""
    customer_id = session.execute(
        sa.text("INSERT INTO customers (email) VALUES (:email) RETURNING id"), {"email": email}
    ).scalar_one()
    order_id = session.execute(
        sa.text("INSERT INTO orders (customer_id, total_cents) VALUES (:c, 1999) RETURNING id"),
        {"c": customer_id},
    ).scalar_one()
    job = manager.add_job("send_order_email", {"order_id": order_id}, session=session)
    return job.id


# -- independent lineage -----------------------------------------------------------


def test_independent_lineage(host_tree: Path, empty_engine: sa.Engine, empty_url: str) -> None:
    config = host_config(host_tree, "independent", empty_url)
    command.upgrade(config, "head")
    assert tables(empty_engine) == SHOP_TABLES | {"alembic_version"}
    assert versions(empty_engine, "alembic_version") == {"shop_0001"}

    migrations.upgrade(empty_engine)
    assert tables(empty_engine) == SHOP_TABLES | QUEUEKIT_TABLES | {
        "alembic_version",
        migrations.VERSION_TABLE,
    }
    assert versions(empty_engine, "alembic_version") == {"shop_0001"}
    assert versions(empty_engine, migrations.VERSION_TABLE) == {migrations.head()}

    # The host's autogenerate, with the two filters in its env.py, proposes nothing.
    proposed = autogenerate(config)
    assert proposed.upgrade_ops is not None
    assert proposed.upgrade_ops.is_empty(), proposed.upgrade_ops.as_diffs()
    written = next((host_tree / "independent" / "versions").glob("*_check.py")).read_text()
    assert "queuekit" not in written

    # Without them, the same comparison would drop every queuekit table.
    from shopapp.models import metadata as shop_metadata

    with empty_engine.connect() as conn:
        unfiltered = MigrationContext.configure(conn, opts={"target_metadata": shop_metadata})
        diffs = compare_metadata(unfiltered, shop_metadata)
    dropped = {diff[1].name for diff in diffs if diff[0] == "remove_table"}
    assert dropped == QUEUEKIT_TABLES | {migrations.VERSION_TABLE}

    # Both lineages work; the host moving its own history leaves queuekit's alone.
    manager = JobManager(empty_engine)
    with Session(empty_engine) as session, session.begin():
        job_id = place_order(manager, session, "ada@example.com")
    assert manager.get_job(job_id) is not None
    command.downgrade(config, "base")
    assert tables(empty_engine) == QUEUEKIT_TABLES | {"alembic_version", migrations.VERSION_TABLE}
    assert versions(empty_engine, migrations.VERSION_TABLE) == {migrations.head()}
    assert manager.get_job(job_id) is not None


# -- merged lineage ------------------------------------------------------------------


def test_merged_lineage(host_tree: Path, empty_engine: sa.Engine, empty_url: str) -> None:
    config = host_config(host_tree, "merged", empty_url)
    command.upgrade(config, "heads")
    assert tables(empty_engine) == SHOP_TABLES | QUEUEKIT_TABLES | {
        "alembic_version",
        "order_emails",
    }
    # shop_0002 depends on queuekit_0001: Alembic drops that row once shop_0002 is in,
    # and keeps queuekit's own head only when it is a later revision.
    recorded = versions(empty_engine, "alembic_version")
    assert recorded == {"shop_0002"} | ({migrations.head()} - {"queuekit_0001"})
    assert migrations.current(empty_engine) is None

    # JobManager accepts the merged schema and the shop's foreign key holds.
    manager = JobManager(empty_engine)
    with Session(empty_engine) as session, session.begin():
        job_id = place_order(manager, session, "grace@example.com")
        session.execute(
            sa.text("INSERT INTO order_emails (order_id, job_id) VALUES (1, :job)"),
            {"job": job_id.hex if empty_engine.dialect.name == "sqlite" else job_id},
        )
    with pytest.raises(sa.exc.IntegrityError), Session(empty_engine) as session:
        session.execute(
            sa.text("INSERT INTO order_emails (order_id, job_id) VALUES (1, :job)"),
            {"job": uuid.uuid4().hex if empty_engine.dialect.name == "sqlite" else uuid.uuid4()},
        )
        session.commit()

    # Completing the job deletes its row; the shop's reference lets go (ON DELETE SET NULL).
    (claimed,) = manager.get_jobs(WORKER)
    assert claimed.id == job_id
    assert manager.complete_jobs(WORKER, [claimed], 5) == [claimed]
    with empty_engine.connect() as conn:
        links = conn.execute(sa.text("SELECT order_id, job_id FROM order_emails")).all()
    assert [tuple(link) for link in links] == [(1, None)]
    assert [record.status for record in manager.job_history(job_id)] == ["completed"]

    proposed = autogenerate(config, head="shop@head")
    assert proposed.upgrade_ops is not None
    assert proposed.upgrade_ops.is_empty(), proposed.upgrade_ops.as_diffs()

    # The command line agrees with itself: merged, at head, up to date.
    current = CliRunner().invoke(cli, ["--database-url", empty_url, "db", "current"])
    assert current.exit_code == 0, current.output
    assert current.stdout.strip() == (
        f"{migrations.head()} (merged into your Alembic history; up to date)"
    )
    checked = CliRunner().invoke(cli, ["--database-url", empty_url, "--json", "db", "check"])
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout) == {
        "current": migrations.head(),
        "head": migrations.head(),
        "up_to_date": True,
        "merged": True,
    }

    # queuekit's own upgrade refuses: these tables are the host history's to migrate.
    with pytest.raises(SchemaNotMigratedError, match="alembic upgrade heads"):
        migrations.upgrade(empty_engine)
    assert migrations.VERSION_TABLE not in tables(empty_engine)


def test_merged_lineage_out_of_date(
    host_tree: Path, empty_engine: sa.Engine, empty_url: str
) -> None:
    config = host_config(host_tree, "merged", empty_url)
    command.upgrade(config, "heads")
    with empty_engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE queuekit_known_crontabs"))
    with pytest.raises(SchemaNotMigratedError) as raised:
        JobManager(empty_engine)
    assert "queuekit_known_crontabs" in str(raised.value)
    assert "alembic upgrade heads" in str(raised.value)


def test_merged_lineage_before_the_host_depends_on_queuekit(
    host_tree: Path, empty_engine: sa.Engine, empty_url: str
) -> None:
    """Without a dependent host revision, queuekit's own row stays in ``alembic_version``."""
    config = host_config(host_tree, "merged", empty_url)
    command.upgrade(config, "shop_0001")
    with pytest.raises(SchemaNotMigratedError, match="tables do not exist"):
        JobManager(empty_engine)
    assert migrations.merged_revision(empty_engine) is None
    command.upgrade(config, "queuekit@head")
    assert migrations.merged_revision(empty_engine) == migrations.head()
    assert versions(empty_engine, "alembic_version") == {"shop_0001", migrations.head()}
    JobManager(empty_engine).add_job("send_order_email", {"order_id": 1})

    with empty_engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE alembic_version SET version_num = 'queuekit_9999' WHERE version_num = :head"
            ),
            {"head": migrations.head()},
        )
    with pytest.raises(SchemaNotMigratedError, match="install the newer queuekit"):
        JobManager(empty_engine)


def test_merged_lineage_first_host_revision(
    host_tree: Path, empty_engine: sa.Engine, empty_url: str
) -> None:
    """A plain autogenerate would extend queuekit's branch: refused; the documented way works."""
    shop_versions = host_tree / "merged" / "versions"
    for revision_file in shop_versions.glob("shop_*.py"):
        revision_file.unlink()  # a host that has no revision of its own yet
    # queuekit's revisions from a copy, so that a misfire could not write into the real ones.
    queuekit_versions = host_tree / "queuekit_versions"
    shutil.copytree(
        migrations.versions_location(), queuekit_versions, ignore=shutil.ignore_patterns("__*")
    )
    config = host_config(host_tree, "merged", empty_url)
    config.set_main_option("version_locations", f"{shop_versions} {queuekit_versions}")
    command.upgrade(config, "heads")
    before = sorted(queuekit_versions.iterdir())

    # The include helpers alone refuse an autogenerate aimed at queuekit's branch.
    env_py = host_tree / "merged" / "env.py"
    with_hook = env_py.read_text()
    hook = "process_revision_directives=check_new_revisions,"
    assert hook in with_hook
    env_py.write_text(with_hook.replace(hook, ""))
    with pytest.raises(CommandError) as refused:
        command.revision(config, message="first", autogenerate=True)
    env_py.write_text(with_hook)
    message = str(refused.value)
    assert f"on {migrations.head()}" in message
    assert "--head base --branch-label NAME --version-path DIR" in message
    # The hook in env.py refuses an empty revision too (with revision_environment = true).
    config.set_main_option("revision_environment", "true")
    with pytest.raises(CommandError, match="queuekit's branch"):
        command.revision(config, message="empty")
    with pytest.raises(CommandError, match="queuekit's branch"):
        command.revision(
            config,
            message="explicit",
            autogenerate=True,
            head="queuekit@head",
            version_path=str(shop_versions),
        )
    assert sorted(queuekit_versions.iterdir()) == before
    assert list(shop_versions.glob("*.py")) == []

    script = command.revision(
        config,
        message="first",
        autogenerate=True,
        head="base",
        branch_label="shop",
        version_path=str(shop_versions),
    )
    assert isinstance(script, Script)
    assert Path(script.path).parent == shop_versions
    assert script.down_revision is None
    assert sorted(queuekit_versions.iterdir()) == before


# -- databases queuekit cannot run on ------------------------------------------------


def test_database_migrated_by_a_newer_queuekit(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE {migrations.VERSION_TABLE} SET version_num = 'queuekit_9999'")
        )
    with pytest.raises(SchemaNotMigratedError) as raised:
        JobManager(engine)
    message = str(raised.value)
    assert "'queuekit_9999'" in message
    assert "install the newer queuekit" in message


def test_half_migrated_database(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE queuekit_job_history"))
    with pytest.raises(SchemaNotMigratedError) as raised:
        JobManager(engine)
    message = str(raised.value)
    assert "queuekit_job_history" in message
    assert "half-migrated" in message
    assert "queuekit db upgrade" in message


def test_tables_without_a_version_table(empty_engine: sa.Engine) -> None:
    """Tables left by an interrupted migration: JobManager and upgrade both say what to do."""
    queuekit_metadata.create_all(empty_engine)
    with pytest.raises(SchemaNotMigratedError, match="queuekit db upgrade"):
        JobManager(empty_engine)
    with pytest.raises(SchemaNotMigratedError, match="interrupted"):
        migrations.upgrade(empty_engine)
    assert migrations.VERSION_TABLE not in tables(empty_engine)


def test_empty_database(empty_engine: sa.Engine) -> None:
    with pytest.raises(SchemaNotMigratedError, match="queuekit db upgrade"):
        JobManager(empty_engine)


def test_sqlite_engine_the_host_used_before_queuekit(tmp_path: Path) -> None:
    """Connections pooled before JobManager saw the engine get queuekit's set-up too."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'shop.db'}")
    with engine.connect() as conn:  # the host's own work, before queuekit
        conn.execute(sa.text("SELECT 1"))
    migrations.upgrade(engine)
    JobManager(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA foreign_keys")).scalar_one() == 1
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert conn.connection.driver_connection.isolation_level is None  # type: ignore[union-attr]
    engine.dispose()
