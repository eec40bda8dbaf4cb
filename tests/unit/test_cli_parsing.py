"""The command line's argument parsing and exit statuses, without opening a database.

Every invocation here names a SQLite file that does not exist: a parsing
error must stop the command before it is created (the database is opened
only once the arguments are understood).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from queuekit.cli import cli
from queuekit.cli.app import (
    COMMAND_MODULES,
    DURATION,
    EXIT_FAILURE,
    EXIT_USAGE,
    INTERVAL,
    JOB_ID,
    JSON,
    TIME,
    exit_status,
    load_commands,
    one_line,
)
from queuekit.errors import (
    DatabaseError,
    InvalidArgumentError,
    QueueKitError,
    SchemaNotMigratedError,
)


def test_durations_accept_numbers_and_words() -> None:
    assert DURATION.convert("90", None, None) == timedelta(seconds=90)
    assert DURATION.convert(" 1 hour 30 minutes ", None, None) == timedelta(minutes=90)
    assert DURATION.convert("0", None, None) == timedelta(0)
    with pytest.raises(click.BadParameter, match="greater than zero"):
        INTERVAL.convert("0 seconds", None, None)
    with pytest.raises(click.BadParameter, match="malformed duration"):
        DURATION.convert("soon", None, None)


def test_times_need_a_utc_offset() -> None:
    assert TIME.convert("2030-01-01T02:00:00+02:00", None, None) == datetime(2030, 1, 1, tzinfo=UTC)
    assert TIME.convert("2030-01-01T00:00:00Z", None, None).tzinfo is UTC
    before = datetime.now(UTC)
    assert before <= TIME.convert("NOW", None, None) <= datetime.now(UTC)
    with pytest.raises(click.BadParameter, match="no UTC offset"):
        TIME.convert("2030-01-01T00:00:00", None, None)
    with pytest.raises(click.BadParameter, match="not an ISO 8601 time"):
        TIME.convert("tomorrow", None, None)


def test_job_ids_and_json(tmp_path: Path) -> None:
    job_id = uuid.uuid4()
    assert JOB_ID.convert(f" {job_id} ", None, None) == job_id
    with pytest.raises(click.BadParameter, match="not a job id"):
        JOB_ID.convert("not-a-uuid", None, None)
    assert JSON.convert('{"a": [1]}', None, None) == {"a": [1]}
    document = tmp_path / "payload.json"
    document.write_text(json.dumps({"from": "file"}))
    assert JSON.convert(f"@{document}", None, None) == {"from": "file"}
    with pytest.raises(click.BadParameter, match="not valid JSON"):
        JSON.convert("{oops", None, None)
    with pytest.raises(click.BadParameter, match="cannot read"):
        JSON.convert(f"@{tmp_path / 'missing.json'}", None, None)


@pytest.mark.parametrize(
    ("error", "status", "text"),
    [
        (InvalidArgumentError("bad value"), EXIT_USAGE, "bad value"),
        (SchemaNotMigratedError("run upgrade"), EXIT_FAILURE, "run upgrade"),
        (DatabaseError("boom"), EXIT_FAILURE, "database error: boom"),
        (QueueKitError("other"), EXIT_FAILURE, "other"),
        (KeyError("k"), EXIT_FAILURE, "unexpected KeyError"),
    ],
)
def test_exit_status_tells_caller_mistakes_from_failures(
    error: BaseException, status: int, text: str
) -> None:
    code, message = exit_status(error)
    assert code == status
    assert text in message


def test_messages_fit_on_one_line() -> None:
    assert one_line("a\n  b\tc\n") == "a b c"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("add", "t", "[1, 2"), "not valid JSON"),
        (("add", "t", "{}", "--run-at", "2030-01-01T00:00:00"), "no UTC offset"),
        (("add", "t", "{}", "--delay", "soon"), "malformed duration"),
        (("add", "t", "{}", "--max-attempts", "0"), "--max-attempts"),
        (("add", "t", "{}", "--job-key-mode", "upsert"), "--job-key-mode"),
        (("add",), "Missing argument"),
        (("add", "t", "{}", "--colour"), "No such option"),
        (("jobs", "show", "not-a-uuid"), "not a job id"),
        (("jobs", "list", "--status", "done"), "--status"),
        (("history", "--since", "-1 hour"), "duration"),
        (("rate-limit", "set", "k", "10", "0 seconds"), "greater than zero"),
        (("nonsense",), "No such command"),
    ],
)
def test_parsing_errors_are_one_line_exit_2_and_touch_no_database(
    tmp_path: Path, args: tuple[str, ...], needle: str
) -> None:
    database = tmp_path / "never-created.db"
    result = CliRunner().invoke(cli, ["--database-url", f"sqlite:///{database}", *args])
    assert result.exit_code == EXIT_USAGE, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.output
    assert not database.exists()


def test_every_command_has_help(tmp_path: Path) -> None:
    def walk(command: click.Command, path: list[str]) -> list[list[str]]:
        found = [path]
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                found += walk(sub, [*path, name])
        return found

    load_commands()
    paths = walk(cli, [])
    assert ["add"] in paths and ["db", "upgrade"] in paths
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_the_database_url_option_and_environment(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    @cli.command("qk-unit-probe", hidden=True)
    @click.pass_obj
    def probe(state: Any) -> None:
        seen["url"] = state.url

    try:
        runner = CliRunner()
        assert (
            runner.invoke(cli, ["qk-unit-probe"], env={"QUEUEKIT_DATABASE_URL": ""}).exit_code == 0
        )
        default = seen["url"]
        env_url = f"sqlite:///{tmp_path / 'env.db'}"
        runner.invoke(cli, ["qk-unit-probe"], env={"QUEUEKIT_DATABASE_URL": env_url})
        assert seen["url"] == env_url
        flag_url = f"sqlite:///{tmp_path / 'flag.db'}"
        runner.invoke(
            cli,
            ["--database-url", flag_url, "qk-unit-probe"],
            env={"QUEUEKIT_DATABASE_URL": env_url},
        )
        assert seen["url"] == flag_url
    finally:
        del cli.commands["qk-unit-probe"]
    assert default == "sqlite:///queuekit.db"


def test_each_command_is_found_in_the_module_the_root_group_imports_for_it() -> None:
    load_commands()
    defined = {
        name: command.callback.__module__
        for name, command in cli.commands.items()
        if command.callback is not None and command.callback.__module__.startswith("queuekit.")
    }
    assert defined == {name: f"queuekit.cli.{module}" for name, module in COMMAND_MODULES.items()}
