"""Shared fixtures: a fresh database per test on SQLite, PostgreSQL and MariaDB.

PostgreSQL and MariaDB come from the servers on the machine. Without one, its
tests skip with a loud reason; with ``QUEUEKIT_REQUIRE_SERVERS=1`` (set by CI)
a missing server fails the test instead.

Tests under ``tests/unit/`` get the ``unit`` marker and may not ask for a
database fixture (collection fails if one does), so ``make unit`` never
needs a server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from clock import MovableClock, movable_clock

from queuekit import JobManager, migrations

PG_ADMIN_URL = os.environ.get(
    "QUEUEKIT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_ADMIN_URL = os.environ.get("QUEUEKIT_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test")
REQUIRE_SERVERS = os.environ.get("QUEUEKIT_REQUIRE_SERVERS") == "1"
DIALECTS = ("sqlite", "postgresql", "mariadb")
SERVER_DIALECTS = ("postgresql", "mariadb")

_server_state: dict[str, str | None] = {}


UNIT_DIR = Path(__file__).resolve().parent / "unit"
#: Fixtures that open or create a database; the unit tier may use none of them.
DATABASE_FIXTURES = frozenset(
    {
        "dialect",
        "server_dialect",
        "empty_url",
        "empty_engine",
        "engine",
        "manager",
        "module_engine",
        "clean_manager",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the unit tier, and refuse a unit test that asks for a database."""
    for item in items:
        if UNIT_DIR not in item.path.parents:
            continue
        item.add_marker(pytest.mark.unit)
        wanted = DATABASE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if wanted:
            raise pytest.UsageError(
                f"{item.nodeid} is in tests/unit/ but uses {sorted(wanted)}; "
                "move it next to the conformance tests or drop the database"
            )


def _server_problem(dialect: str) -> str | None:
    """None when the server answers, else why it does not (checked once per run)."""
    if dialect not in _server_state:
        url = PG_ADMIN_URL if dialect == "postgresql" else MYSQL_ADMIN_URL
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            _server_state[dialect] = None
        except Exception as error:  # any failure means the server is unusable here
            _server_state[dialect] = f"{dialect} server unavailable at {url}: {error}"
        finally:
            engine.dispose()
    return _server_state[dialect]


def require_server(dialect: str) -> None:
    """Skip (locally) or fail (in CI) when a server dialect's server is missing."""
    if dialect == "sqlite":
        return
    problem = _server_problem(dialect)
    if problem is None:
        return
    if REQUIRE_SERVERS:
        pytest.fail(f"QUEUEKIT_REQUIRE_SERVERS=1 but {problem}")
    pytest.skip(f"SKIPPING {dialect.upper()} TESTS: {problem}")


def _with_database(url: str, name: str) -> str:
    return sa.make_url(url).set(database=name).render_as_string(hide_password=False)


def create_database_url(dialect: str, tmp_path: Path) -> Iterator[str]:
    """Create a fresh, empty database for ``dialect`` and yield its URL; drop it afterwards."""
    require_server(dialect)
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path / 'queuekit-test.db'}"
        return
    name = f"qk_{uuid.uuid4().hex[:16]}"
    admin_url = PG_ADMIN_URL if dialect == "postgresql" else MYSQL_ADMIN_URL
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
        yield _with_database(admin_url, name)
    finally:
        with admin.connect() as conn:
            if dialect == "postgresql":
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    """Each test using it runs once per dialect."""
    return str(request.param)


@pytest.fixture(params=SERVER_DIALECTS)
def server_dialect(request: pytest.FixtureRequest) -> str:
    """Each test using it runs once per server dialect (PostgreSQL, MariaDB)."""
    return str(request.param)


@pytest.fixture
def empty_url(dialect: str, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh, empty database of the parametrized dialect."""
    yield from create_database_url(dialect, tmp_path)


@pytest.fixture
def empty_engine(empty_url: str) -> Iterator[sa.Engine]:
    """An engine on a fresh, empty (unmigrated) database."""
    engine = sa.create_engine(empty_url)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(empty_engine: sa.Engine) -> sa.Engine:
    """An engine on a fresh database migrated to head."""
    from queuekit import migrations

    migrations.upgrade(empty_engine)
    return empty_engine


@pytest.fixture
def manager(engine: sa.Engine) -> JobManager:
    """A JobManager on a fresh migrated database of the parametrized dialect."""
    return JobManager(engine)


@pytest.fixture
def pg_manager(tmp_path: Path) -> Iterator[JobManager]:
    """A JobManager on a fresh PostgreSQL database (LISTEN/NOTIFY exists only there)."""
    for url in create_database_url("postgresql", tmp_path):
        engine = sa.create_engine(url)
        migrations.upgrade(engine)
        yield JobManager(engine)
        engine.dispose()


@pytest.fixture
def clock(manager: JobManager) -> MovableClock:
    """The ``manager``'s database clock, movable (see tests/clock.py)."""
    return movable_clock(manager)


@pytest.fixture(scope="module", params=DIALECTS)
def module_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sa.Engine]:
    """One database per dialect migrated to head, shared by a test module's tests.

    Creating and migrating a database costs far more than emptying one; tests
    that only need an empty, migrated database use ``clean_manager`` on it.
    """
    from queuekit import migrations

    urls = create_database_url(str(request.param), tmp_path_factory.mktemp("module-db"))
    url = next(urls)
    engine = sa.create_engine(url)
    migrations.upgrade(engine)
    yield engine
    engine.dispose()
    next(urls, None)


@pytest.fixture
def clean_manager(module_engine: sa.Engine) -> JobManager:
    """A JobManager on the module's database of the parametrized dialect, emptied first."""
    from queuekit.models import metadata

    with module_engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
    return JobManager(module_engine)
