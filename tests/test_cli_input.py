"""Command-line input that cannot work as typed exits 2 with one line, never 1 "unexpected".

Unknown migration revisions, files and standard input that are not UTF-8,
database URLs with a bad port, and names carrying undecodable bytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from queuekit import JobManager, migrations
from queuekit.cli import cli

NOT_UTF8 = b'{"to": "caf\xe9"}'


def invoke(url: str, *args: str, input: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, ["--database-url", url, *args], input=input)


def usage_error(url: str, *args: str, input: bytes | None = None) -> str:
    """Run a command that must exit 2 with one error line and no traceback."""
    result = invoke(url, *args, input=input)
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: ") and "unexpected" not in line
    assert "Traceback" not in result.output
    return line


@pytest.fixture
def url(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.mark.parametrize(
    "args",
    [("db", "upgrade", "nope"), ("db", "downgrade", "zzz", "--yes"), ("db", "upgrade", "+5")],
    ids=" ".join,
)
def test_unknown_revisions_are_usage_errors(url: str, engine: sa.Engine, args: tuple[str]) -> None:
    line = usage_error(url, *args)
    assert "revision" in line.lower()
    assert migrations.current(engine) == migrations.head()


def test_unknown_revisions_from_python_are_argument_errors(engine: sa.Engine) -> None:
    from queuekit import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="unknown revision 'nope'"):
        migrations.upgrade(engine, "nope")
    with pytest.raises(InvalidArgumentError, match="unknown revision"):
        migrations.downgrade(engine, "queuekit_9999")


def test_files_and_stdin_that_are_not_utf8_are_usage_errors(
    url: str, engine: sa.Engine, tmp_path: Path
) -> None:
    payload = tmp_path / "payload.json"
    payload.write_bytes(NOT_UTF8)
    assert "not UTF-8" in usage_error(url, "add", "mail", f"@{payload}")
    assert "not UTF-8" in usage_error(url, "add", "mail", "-", input=NOT_UTF8)
    assert "not UTF-8" in usage_error(url, "schema", "set", "mail", str(payload))
    assert "not UTF-8" in usage_error(url, "schema", "set", "mail", "-", input=NOT_UTF8)
    manager = JobManager(engine)
    assert manager.list_jobs() == [] and manager.get_task("mail") is None


def test_utf8_stdin_still_works(url: str, engine: sa.Engine) -> None:
    result = invoke(url, "add", "mail", "-", input='{"to": "café"}'.encode())
    assert result.exit_code == 0, result.stderr
    [job] = JobManager(engine).list_jobs()
    assert job.payload == {"to": "café"}


@pytest.mark.parametrize(
    "bad_url",
    [
        "postgresql+psycopg://postgres@127.0.0.1:99999/x",
        "mysql+pymysql://root@127.0.0.1:abc/x",
        "postgresql+psycopg://postgres@127.0.0.1:0/x",
    ],
)
def test_database_urls_with_a_bad_port_are_usage_errors(bad_url: str) -> None:
    assert "port" in usage_error(bad_url, "stats")


def test_names_with_undecodable_bytes_are_usage_errors(url: str, engine: sa.Engine) -> None:
    name = b"mail\xff".decode("utf-8", "surrogateescape")  # how argv carries such bytes
    assert "lone surrogate" in usage_error(url, "add", name, "{}")
    assert "lone surrogate" in usage_error(url, "add", "mail", '{"to": "\\udcff"}')
    assert JobManager(engine).list_jobs() == []
