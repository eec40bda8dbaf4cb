"""The built distribution works on its own: wheel contents, a fresh install, migrations, typing.

One wheel and one sdist are built per test run with ``python -m build``
(build isolation included, as a user would), and the wheel is installed with
its ``postgresql`` extra into one fresh virtual environment. pip resolves the
dependencies from the package index configured on the machine. Everything
then runs with that environment's executables, from a temporary working
directory and without ``PYTHONPATH``, so the source tree cannot be imported
by accident; the scripts check where ``queuekit`` came from.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import create_database_url

import queuekit
from queuekit import migrations

REPO = Path(__file__).resolve().parent.parent
HOST_APP = Path(__file__).resolve().parent / "host_app"


@dataclass(frozen=True)
class Installed:
    """The built distributions and the virtual environment the wheel is installed in."""

    wheel: Path
    sdist: Path
    venv: Path
    workdir: Path

    def bin(self, name: str) -> str:
        """Path of an executable of the environment."""
        return str(self.venv / "bin" / name)

    @property
    def site_packages(self) -> Path:
        """The environment's site-packages directory."""
        purelib = sysconfig.get_path("purelib", vars={"base": str(self.venv)})
        return Path(purelib)

    def run(
        self, *args: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a command from the temporary working directory, without PYTHONPATH."""
        environment = {
            key: value
            for key, value in os.environ.items()
            if key not in {"PYTHONPATH", "VIRTUAL_ENV", "QUEUEKIT_DATABASE_URL"}
        }
        environment.update(env or {})
        result = subprocess.run(
            args,
            cwd=self.workdir,
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Build the wheel and sdist once, and install the wheel in a fresh virtualenv."""
    root = tmp_path_factory.mktemp("packaging")
    dist = root / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(dist), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("queuekit-*.whl")
    (sdist,) = dist.glob("queuekit-*.tar.gz")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    workdir = root / "work"
    workdir.mkdir()
    result = Installed(wheel=wheel, sdist=sdist, venv=venv, workdir=workdir)
    result.run(result.bin("pip"), "install", "--quiet", f"{wheel}[postgresql]")
    return result


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A fresh, empty PostgreSQL database."""
    yield from create_database_url("postgresql", tmp_path)


def test_wheel_carries_the_migrations_and_the_types(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    shipped = {
        f"queuekit/_alembic/{path.relative_to(REPO / 'alembic').as_posix()}"
        for path in (REPO / "alembic").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert {
        "queuekit/_alembic/env.py",
        "queuekit/_alembic/alembic.ini",
        "queuekit/_alembic/script.py.mako",
    } <= shipped
    revisions = {name for name in shipped if name.startswith("queuekit/_alembic/versions/")}
    assert len(revisions) == len(list((REPO / "alembic" / "versions").glob("*.py"))) >= 1
    assert shipped <= names
    assert "queuekit/py.typed" in names
    assert not [name for name in names if name.endswith(".pyc") or "__pycache__" in name]
    assert not [name for name in names if name.startswith(("tests/", "alembic/", "docs/"))]


def test_sdist_carries_the_sources(installed: Installed) -> None:
    with tarfile.open(installed.sdist) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {
        "pyproject.toml",
        "alembic.ini",
        "alembic/alembic.ini",
        "alembic/env.py",
        "queuekit/py.typed",
        "tests/host_app/merged/alembic.ini",
        "README.md",
        "CHANGELOG.md",
    } <= names
    assert {name for name in names if name.startswith("docs/") and name.endswith(".md")}


def test_the_installed_package_is_not_the_source_tree(installed: Installed) -> None:
    result = installed.run(
        installed.bin("python"),
        "-c",
        "import json, queuekit, queuekit.migrations as m; "
        "print(json.dumps([queuekit.__file__, queuekit.__version__, m.script_location()]))",
    )
    location, version, script_location = json.loads(result.stdout)
    package = installed.site_packages / "queuekit"
    assert Path(location) == package / "__init__.py"
    assert version == queuekit.__version__
    assert Path(script_location) == package / "_alembic"
    assert (package / "py.typed").is_file()


def test_synchronous_install_imports_without_greenlet(installed: Installed) -> None:
    """Only the ``*-async`` extras bring greenlet; plain ``import queuekit`` must not need it."""
    probe = (
        "import importlib.util, queuekit\n"
        "assert importlib.util.find_spec('greenlet') is None, 'greenlet is installed'\n"
        "try:\n"
        "    queuekit.AsyncJobManager\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = installed.run(installed.bin("python"), "-c", probe)
    assert "install queuekit[postgresql-async]" in result.stdout


USER_SCRIPT = """\
import json
import sys

import sqlalchemy as sa

import queuekit
from queuekit import JobManager

engine = sa.create_engine(sys.argv[1])
manager = JobManager(engine)
job = manager.add_job("send_email", {"to": "ada@example.com"})
(claimed,) = manager.get_jobs("packaging-worker")
completed = manager.complete_jobs("packaging-worker", [claimed], 5)
manager.add_job("send_email", {"to": "grace@example.com"})
sent = []
worker = queuekit.Worker(manager, {"send_email": lambda payload, ctx: sent.append(payload)})
stats = worker.drain()
print(json.dumps({
    "queuekit": queuekit.__file__,
    "sent": sent,
    "worker_completed": stats.completed,
    "job": str(job.id),
    "claimed": str(claimed.id),
    "completed": [str(done.id) for done in completed],
    "history": [record.status for record in manager.job_history(job.id)],
}))
"""


def upgrade_enqueue_claim(installed: Installed, url: str) -> None:
    """`queuekit db upgrade` on an empty database, then a job enqueued, claimed and completed."""
    upgraded = installed.run(
        installed.bin("queuekit"), "--database-url", url, "--json", "db", "upgrade"
    )
    assert json.loads(upgraded.stdout) == {
        "from": None,
        "to": migrations.head(),
        "head": migrations.head(),
    }
    installed.run(installed.bin("queuekit"), "--database-url", url, "db", "check")
    (installed.workdir / "user.py").write_text(USER_SCRIPT)
    result = json.loads(installed.run(installed.bin("python"), "user.py", url).stdout)
    assert Path(result["queuekit"]).is_relative_to(installed.site_packages)
    assert result["claimed"] == result["job"]
    assert result["completed"] == [result["job"]]
    assert result["history"] == ["completed"]
    assert result["sent"] == [{"to": "grace@example.com"}]
    assert result["worker_completed"] == 1


def test_db_upgrade_and_a_job_on_sqlite(installed: Installed, tmp_path: Path) -> None:
    upgrade_enqueue_claim(installed, f"sqlite:///{tmp_path / 'fresh.db'}")


def test_db_upgrade_and_a_job_on_postgresql(installed: Installed, pg_url: str) -> None:
    upgrade_enqueue_claim(installed, pg_url)


def test_the_shipped_alembic_ini(installed: Installed, tmp_path: Path) -> None:
    """`alembic -c <package>/_alembic/alembic.ini upgrade head` migrates an empty database."""
    url = f"sqlite:///{tmp_path / 'alembic-cli.db'}"
    ini = installed.site_packages / "queuekit" / "_alembic" / "alembic.ini"
    installed.run(
        installed.bin("alembic"),
        "-c",
        str(ini),
        "upgrade",
        "head",
        env={"QUEUEKIT_DATABASE_URL": url},
    )
    engine = sa.create_engine(url)
    try:
        migrations.check(engine)
    finally:
        engine.dispose()


def test_host_merged_lineage_finds_the_installed_revisions(
    installed: Installed, tmp_path: Path
) -> None:
    """The host's ``queuekit:_alembic/versions`` line, and what a wrong separator does."""
    tree = tmp_path / "host_app"
    shutil.copytree(HOST_APP, tree, ignore=shutil.ignore_patterns("__pycache__"))
    ini = tree / "merged" / "alembic.ini"
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    config_text = ini.read_text().replace(
        "sqlalchemy.url = sqlite:///shop.db", f"sqlalchemy.url = {url}"
    )
    ini.write_text(config_text)
    installed.run(installed.bin("alembic"), "-c", str(ini), "upgrade", "heads")
    engine = sa.create_engine(url)
    try:
        names = set(sa.inspect(engine).get_table_names())
        assert {"customers", "orders", "order_emails", "queuekit_jobs"} <= names
        heads = installed.run(installed.bin("alembic"), "-c", str(ini), "heads").stdout
        assert "shop_0002 (shop) (head)" in heads
        assert migrations.head() in heads
    finally:
        engine.dispose()

    # With `path_separator = os` the colon of "queuekit:_alembic/versions" splits the
    # list: Alembic finds no revision at all, and `upgrade heads` quietly does nothing.
    wrong_url = f"sqlite:///{tmp_path / 'wrong.db'}"
    ini.write_text(
        config_text.replace("path_separator = space", "path_separator = os").replace(url, wrong_url)
    )
    installed.run(installed.bin("alembic"), "-c", str(ini), "upgrade", "heads")
    assert installed.run(installed.bin("alembic"), "-c", str(ini), "heads").stdout.strip() == ""
    engine = sa.create_engine(wrong_url)
    try:
        assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()


TYPED_USER_SCRIPT = """\
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from queuekit import (
    Job,
    JobContext,
    JobError,
    JobManager,
    JobSpec,
    PartialSuccess,
    QueueStats,
    SchemaNotMigratedError,
    Worker,
    WorkerStats,
    migrations,
)


def send_email(payload: dict[str, Any], ctx: JobContext) -> PartialSuccess | None:
    if ctx.cancelled.is_set():
        return None
    return PartialSuccess(completed_steps=["render"], failed_steps=["send"])


def enqueue(session: Session, manager: JobManager, order_id: int) -> Job:
    return manager.add_job("send_email", {"order_id": order_id}, priority=1, session=session)


def work(manager: JobManager) -> list[Job]:
    manager.add_jobs([JobSpec("send_email", {"n": 1}), JobSpec("other", queue_name="q")])
    jobs: list[Job] = manager.get_jobs("worker-1", batch_size=10)
    done = manager.complete_jobs("worker-1", jobs[:1], 12)
    manager.fail_jobs("worker-1", [JobError(job, "boom") for job in jobs[1:]], 3)
    return done


def run_worker(manager: JobManager) -> WorkerStats:
    worker = Worker(manager, {"send_email": send_email}, concurrency=2, maintenance=False)
    return worker.drain()


def main(url: str) -> QueueStats:
    engine: sa.Engine = sa.create_engine(url)
    migrations.upgrade(engine)
    try:
        manager = JobManager(engine)
    except SchemaNotMigratedError as error:
        raise SystemExit(str(error)) from error
    work(manager)
    run_worker(manager)
    return manager.stats()
"""


def test_mypy_strict_on_a_user_script(installed: Installed) -> None:
    """A user's typed code checks against the installed package's inline types."""
    (installed.workdir / "typed_user.py").write_text(TYPED_USER_SCRIPT)
    mypy = [
        str(Path(sys.executable).parent / "mypy"),
        "--strict",
        "--cache-dir",
        str(installed.workdir / ".mypy_cache"),
        "--python-executable",
        installed.bin("python"),
    ]
    checked = installed.run(*mypy, "typed_user.py", check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # The same check rejects wrong calls, so the types really come from the package.
    wrong = TYPED_USER_SCRIPT + (
        "\n\ndef wrong(manager: JobManager) -> str:\n    return manager.add_job(42).id\n"
    )
    (installed.workdir / "typed_wrong.py").write_text(wrong)
    rejected = installed.run(*mypy, "typed_wrong.py", check=False)
    assert rejected.returncode == 1
    assert 'Argument 1 to "add_job" of "JobManager" has incompatible type "int"' in rejected.stdout
    assert 'Incompatible return value type (got "UUID", expected "str")' in rejected.stdout
