"""Every Python block of the documentation runs, in order per file, on a fresh SQLite database.

The blocks of one Markdown file share one namespace, like a reader's
interpreter session, and run in a temporary working directory, so the
``sqlite:///app.db`` the docs create is a fresh file each time. Markers
(see ``doc_blocks``) leave out the few blocks that cannot run here; every
such block is still compiled, and the list of them is pinned below so that
it only grows on purpose. SQL blocks marked for PostgreSQL run on a
migrated PostgreSQL database.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import create_database_url
from doc_blocks import DOCS, Block, blocks, doc_files, doc_module, python_blocks, run

from queuekit import JobManager, Worker, migrations

REPO = DOCS.parent
README = REPO / "README.md"

#: Python blocks the SQLite run leaves out, by file and first words. Each is
#: still checked: excerpts against the file they quote (which another test
#: runs), PostgreSQL blocks on a PostgreSQL database.
NOT_RUN_ON_SQLITE: set[tuple[str, str]] = {
    # excerpt of tests/host_app/independent/env.py (Alembic runs it: test_host_app)
    ("alembic.md", "from queuekit.migrations import include_name,"),
    # excerpt of tests/host_app/merged/env.py (Alembic runs it: test_host_app)
    ("alembic.md", "from queuekit.migrations import check_new_revisions,"),
    # excerpt of the merged host's revision (applied by test_host_app)
    ("alembic.md", 'revision: str = "shop_0002"'),
    # named schemas need PostgreSQL
    ("alembic.md", "import os from sqlalchemy"),
    # excerpt of the Django mount in tests/test_web_mounts.py (which runs it)
    ("dashboard.md", "@csrf_exempt def queuekit_view(request: HttpRequest,"),
    # pool sizing and psycopg's prepare_threshold on a PostgreSQL URL
    ("scaling.md", "import os from sqlalchemy"),
    (
        "scaling.md",
        'engine = create_engine(os.environ["DATABASE_URL"], connect_args={"prepare_threshold":',
    ),
}


def test_there_is_documentation() -> None:
    names = {path.name for path in doc_files()}
    assert {
        "index.md",
        "getting-started.md",
        "concepts.md",
        "tasks.md",
        "transactions.md",
        "alembic.md",
        "scaling.md",
        "dialects.md",
        "cli.md",
        "upgrading.md",
        "architecture.md",
        "dashboard.md",
        "exactly-once.md",
        "observability.md",
    } <= names


#: The documentation files that hold Python blocks. The others (the index, the
#: command-line guide) hold none, so a run of them would prove nothing.
FILES_WITH_PYTHON = {
    "alembic.md",
    "concepts.md",
    "dashboard.md",
    "dialects.md",
    "exactly-once.md",
    "frameworks.md",
    "getting-started.md",
    "observability.md",
    "scaling.md",
    "tasks.md",
    "transactions.md",
    "upgrading.md",
}


def with_python_blocks() -> list[Path]:
    """The documentation files that hold at least one Python block."""
    return [path for path in doc_files() if python_blocks(path)]


def test_the_files_with_python_blocks_are_the_expected_ones() -> None:
    assert {path.name for path in with_python_blocks()} == FILES_WITH_PYTHON


@pytest.mark.parametrize("path", with_python_blocks(), ids=lambda path: path.name)
def test_python_blocks_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    engines: list[sa.Engine] = []
    with doc_module(f"docs_{path.stem.replace('-', '_')}") as module:
        try:
            for block in python_blocks(path):
                if block.excerpt is None:
                    compile(block.code, block.where, "exec")
                if block.runs_on_sqlite:
                    run(block, module)
                    engines.extend(v for v in vars(module).values() if isinstance(v, sa.Engine))
        finally:
            for engine in engines:
                engine.dispose()


class Mailer:
    """The application's mailer the README's worker example calls; one mailbox bounces."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, to: str) -> None:
        if to.endswith(".invalid"):
            raise ValueError(f"no such mailbox: {to}")
        self.sent.append(to)


class Importer:
    """The application's importer the README's worker example calls."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def run(self, path: str, *, stop: object) -> list[str]:
        self.paths.append(path)
        return ["parse"]


def test_readme_python_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's blocks run in order, on a migrated SQLite database with jobs waiting.

    The worker example names an ``engine`` and the application's ``mailer``,
    ``importer`` and ``alert``; the test provides them. ``worker.run()``
    works until a signal, so it runs as ``drain()``: the same jobs, then it returns.
    """
    monkeypatch.chdir(tmp_path)
    readme_blocks = python_blocks(README)
    assert len(readme_blocks) == 2
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'readme.db'}")
    migrations.upgrade(engine)
    setup = JobManager(engine)
    setup.add_job("send_email", {"to": "ada@example.com"})
    setup.add_job("send_email", {"to": "bob@example.invalid"}, max_attempts=1)
    imported = setup.add_job("import_file", {"path": "/data/orders.csv"})
    mailer, importer, alerts = Mailer(), Importer(), []
    monkeypatch.setattr(Worker, "run", lambda worker: worker.drain())
    try:
        with doc_module("docs_readme") as module:
            vars(module).update(
                engine=engine,
                mailer=mailer,
                importer=importer,
                alert=lambda *args: alerts.append(args),
            )
            for block in readme_blocks:
                run(block, module)
            stats = module.worker.stats
        (record,) = setup.job_history(imported.id)
    finally:
        engine.dispose()
    assert mailer.sent == ["ada@example.com"]
    assert importer.paths == ["/data/orders.csv"]
    assert alerts == [("send_email", "no such mailbox: bob@example.invalid")]
    assert (stats.completed, stats.failed, stats.partial_success) == (1, 1, 1)
    assert (record.status, record.completed_steps, record.retry_from_step) == (
        "partial_success",
        ["parse"],
        "index",
    )


def test_blocks_left_out_are_few_and_justified() -> None:
    left_out = {
        (block.path.name, " ".join(block.code.split()[:4]))
        for path in doc_files()
        for block in python_blocks(path)
        if not block.runs_on_sqlite
    }
    assert left_out == NOT_RUN_ON_SQLITE
    for path in doc_files():
        for block in blocks(path):
            if block.skip is not None:
                assert len(block.skip) > 10, f"{block.where}: say why the block is skipped"


@pytest.fixture
def pg_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    """A fresh PostgreSQL database migrated to head."""
    for url in create_database_url("postgresql", tmp_path):
        engine = sa.create_engine(url)
        migrations.upgrade(engine)
        yield engine
        engine.dispose()


@pytest.mark.parametrize(
    "path",
    [path for path in doc_files() if any(b.postgresql for b in python_blocks(path))],
    ids=lambda path: path.name,
)
def test_postgresql_python_blocks_run(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for url in create_database_url("postgresql", tmp_path):
        setup = sa.create_engine(url)
        migrations.upgrade(setup)  # the reader followed "Getting started"
        setup.dispose()
        monkeypatch.setenv("DATABASE_URL", url)
        with doc_module(f"docs_pg_{path.stem.replace('-', '_')}") as module:
            try:
                for block in python_blocks(path):
                    if block.postgresql:
                        run(block, module)
            finally:
                for value in vars(module).values():
                    if isinstance(value, sa.Engine):
                        value.dispose()


def test_excerpts_match_the_files_they_quote() -> None:
    excerpts = [b for path in doc_files() for b in blocks(path) if b.excerpt is not None]
    assert excerpts
    for block in excerpts:
        source = [line.strip() for line in (REPO / str(block.excerpt)).read_text().splitlines()]
        position = 0
        for line in block.code.splitlines():
            wanted = line.strip()
            if not wanted or wanted == "...":
                continue
            assert wanted in source[position:], f"{block.where}: {wanted!r} not in {block.excerpt}"
            position = source.index(wanted, position) + 1


def test_postgresql_sql_blocks_run(pg_engine: sa.Engine) -> None:
    sql_blocks = [
        block
        for path in doc_files()
        for block in blocks(path)
        if block.language == "sql" and block.postgresql
    ]
    assert sql_blocks, "the scaling guide's tuning statements are marked for PostgreSQL"
    for block in sql_blocks:
        with pg_engine.begin() as conn:
            for statement in filter(str.strip, block.code.split(";")):
                conn.exec_driver_sql(statement)


def test_cli_tour_runs(tmp_path: Path) -> None:
    """The command-line guide's shell blocks, in order, in an empty directory."""
    run_blocks = [b for b in blocks(DOCS / "cli.md") if b.run]
    assert len(run_blocks) >= 2
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUEKIT_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    outputs: list[str] = []
    for block in run_blocks:
        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", block.code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{block.where}\n{result.stdout}\n{result.stderr}"
        outputs.append(result.stdout)
    worker_output = outputs[0][outputs[0].find("sending to") :]
    assert "sending to ada@example.com" in worker_output, worker_output
    assert "sending to bob@example.com" in worker_output, worker_output
    assert "sending to eve@example.com" not in worker_output  # delayed by an hour
    stats = subprocess.run(
        ["queuekit", "--json", "stats"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    by_task = json.loads(stats.stdout)["by_task"]
    # eve's delayed job waits; the replayed sync_crm job waits next to the exhausted original.
    assert by_task["send_email"] == {"available": 1, "locked": 0, "exhausted": 0}
    assert by_task["sync_crm"] == {"available": 1, "locked": 0, "exhausted": 1}


def _links(text: str) -> set[str]:
    return {target for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)}


def test_readme_links_every_doc() -> None:
    linked = _links(README.read_text())
    for path in doc_files():
        assert f"docs/{path.name}" in linked, f"README does not link docs/{path.name}"


def test_relative_links_resolve() -> None:
    for path in [README, *doc_files()]:
        for target in _links(path.read_text()):
            if "://" in target:
                continue
            assert (path.parent / target).exists(), f"{path.name} links missing {target}"


def _anchor(heading: str) -> str:
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def test_anchors_resolve() -> None:
    anchors = {
        path.name: {
            _anchor(line.lstrip("#"))
            for line in path.read_text().splitlines()
            if line.startswith("#")
        }
        for path in doc_files()
    }
    for path in doc_files():
        for target, anchor in re.findall(r"\]\(([\w\-]+\.md)#([\w\-]+)\)", path.read_text()):
            assert anchor in anchors[target], f"{path.name} links {target}#{anchor}, no heading"


def test_blocks_are_found(tmp_path: Path) -> None:
    """The block reader sees fences, languages and markers as the docs mean them."""
    sample = tmp_path / "sample.md"
    sample.write_text(
        "Intro\n\n```python\nx = 1\n```\n\n<!-- example: named -->\n```python\ny = 2\n```\n"
        "<!-- docs-test: skip blocks forever on purpose -->\n\n```python\nz = 3\n```\n"
        "text\n<!-- docs-test: postgresql -->\nmore text\n```sql\nSELECT 1\n```\n"
    )
    found: list[Block] = blocks(sample)
    assert [(b.language, b.code, b.name, b.skip, b.postgresql) for b in found] == [
        ("python", "x = 1\n", None, None, False),
        ("python", "y = 2\n", "named", None, False),
        ("python", "z = 3\n", None, "blocks forever on purpose", False),
        ("sql", "SELECT 1\n", None, None, False),
    ]
    assert found[0].line == 4
