"""What the command line prints: rich consoles and progress bars for people, JSON for scripts."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

# rich is imported where first needed: start-up time matters (every command pays it).
if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


def console() -> Console:
    """A rich console on stdout: the terminal's width, else ``COLUMNS``, else 160 when piped."""
    from rich.console import Console

    stream = sys.stdout
    width: int | None = None
    if not stream.isatty():
        columns = os.environ.get("COLUMNS", "")
        width = int(columns) if columns.isdigit() and int(columns) > 0 else 160
    return Console(file=stream, width=width, highlight=False)


def jsonable(value: Any) -> Any:
    """``value`` with queuekit's value types turned into plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


def print_json(value: Any) -> None:
    """Print one JSON document on stdout."""
    click.echo(json.dumps(jsonable(value), indent=2, sort_keys=True))


def progress_bar(*, transient: bool = False) -> Progress:
    """The progress display of long operations (drains, replays, the demo)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(),
        transient=transient,
    )
