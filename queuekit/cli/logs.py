"""Where the command line sends queuekit's log: rich lines on a terminal, or JSON lines.

A worker logs one line per attempt outcome with its fields in the record's
attributes (see :meth:`queuekit.worker.reporting.Reporter.log_outcome`);
the JSON format writes those attributes as keys, so machines need not
parse the message.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]
#: The ``--log-format`` choices.
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

#: Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("name", logging.INFO, "path", 1, "msg", None, None))
) | {"message", "asctime", "taskName"}


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the ``extra`` fields.

    A record with an exception gets its formatted traceback under ``traceback``.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                line[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            line["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(line, default=str, ensure_ascii=False)


def stderr_handler(log_format: LogFormat) -> logging.Handler:
    """A handler on stderr: JSON lines, rich (colour) on a terminal, plain lines otherwise."""
    if log_format == "json":
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLineFormatter())
        return handler
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        return RichHandler(console=Console(stderr=True), show_path=False, markup=False)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def _not_an_outcome(record: logging.LogRecord) -> bool:
    return not hasattr(record, "outcome")


@contextmanager
def logging_to_stderr(
    level: str, log_format: LogFormat = "text", *, outcomes: bool = True
) -> Iterator[None]:
    """Send queuekit's log to stderr at ``level`` while the block runs.

    ``outcomes=False`` leaves out the worker's per-attempt lines, for a
    command that reports outcomes itself (the demo).
    """
    root = logging.getLogger("queuekit")
    saved = (root.handlers[:], root.level, root.propagate)
    handler = stderr_handler(log_format)
    if not outcomes:
        handler.addFilter(_not_an_outcome)
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    try:
        yield
    finally:
        root.handlers[:], root.level, root.propagate = saved


__all__ = ["LOG_FORMATS", "JsonLineFormatter", "LogFormat", "logging_to_stderr", "stderr_handler"]
