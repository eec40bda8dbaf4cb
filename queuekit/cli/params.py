"""The command line's parameter types: JSON documents, durations, times and job ids.

Each turns what was typed into a value or a clean usage error (exit status 2);
``-`` reads standard input and ``@path`` a file where a document is expected.
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from queuekit.durations import parse_duration
from queuekit.errors import InvalidArgumentError

if TYPE_CHECKING:
    ParamBase = click.ParamType[Any, Any]
else:
    ParamBase = click.ParamType

__all__ = ["DURATION", "INTERVAL", "JOB_ID", "JSON", "TIME", "read_stdin", "read_text_file"]


class JSONValue(ParamBase):
    """A JSON document given inline, or ``-`` for stdin, or ``@path`` for a file."""

    name = "json"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        text = value
        if value == "-":
            text = read_stdin(self, param, ctx)
        elif value.startswith("@"):
            text = read_text_file(value[1:], self, param, ctx)
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            self.fail(f"{value!r} is not valid JSON ({error})", param, ctx)


def read_text_file(
    path: str, kind: ParamBase, param: click.Parameter | None, ctx: click.Context | None
) -> str:
    """The text of a file named on the command line, or a clean usage error."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        kind.fail(f"cannot read {path!r}: {error.strerror or error}", param, ctx)
    except UnicodeDecodeError as error:
        kind.fail(f"{path!r} is not UTF-8 text ({error.reason} at byte {error.start})", param, ctx)


def read_stdin(kind: ParamBase, param: click.Parameter | None, ctx: click.Context | None) -> str:
    """Standard input decoded as UTF-8, or a clean usage error.

    Read as bytes: the text stream may decode undecodable bytes into lone
    surrogates, which would only be refused later with a vaguer message.
    """
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        return sys.stdin.read()
    data = stream.read()
    try:
        return str(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        kind.fail(
            f"standard input is not UTF-8 text ({error.reason} at byte {error.start})", param, ctx
        )


class DurationValue(ParamBase):
    """A duration: ``"30 seconds"``, ``"1 hour 30 minutes"``, ``90s``, ``PT5M`` or seconds."""

    name = "duration"

    def __init__(self, *, allow_zero: bool = True) -> None:
        self.allow_zero = allow_zero

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip()
        try:
            number: float | str = float(text)
        except ValueError:
            number = text
        try:
            return parse_duration(number, name="duration", allow_zero=self.allow_zero)
        except InvalidArgumentError as error:
            self.fail(str(error), param, ctx)


class TimeValue(ParamBase):
    """An ISO 8601 time with a UTC offset (``2024-05-01T12:00:00Z``), or ``now``."""

    name = "time"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        if text.lower() == "now":
            return datetime.now(UTC)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{value!r} is not an ISO 8601 time; write it like 2024-05-01T12:00:00Z",
                param,
                ctx,
            )
        if moment.tzinfo is None or moment.utcoffset() is None:
            self.fail(
                f"{value!r} has no UTC offset; add one, e.g. {text}Z or {text}+02:00", param, ctx
            )
        return moment.astimezone(UTC)


class JobIdValue(ParamBase):
    """A job id: a UUID, or a prefix of its hex digits that names one job (as git does)."""

    name = "job_id"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> uuid.UUID:
        from queuekit.cli import short_ids
        from queuekit.cli.app import State  # the root group's state, made by app.py

        if isinstance(value, uuid.UUID):
            return value
        try:
            parsed = short_ids.parse_prefix(str(value))
            if isinstance(parsed, uuid.UUID):
                return parsed
            state = ctx.find_object(State) if ctx is not None else None
            if state is None:
                raise ValueError(f"{value!r} is a job id prefix, which needs a database")
            return short_ids.resolve(state.manager(), parsed)
        except ValueError as error:
            self.fail(str(error), param, ctx)


JSON = JSONValue()
DURATION = DurationValue()
INTERVAL = DurationValue(allow_zero=False)
TIME = TimeValue()
JOB_ID = JobIdValue()
