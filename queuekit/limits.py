"""What every supported database can store, checked before any statement runs.

PostgreSQL refuses NUL in text and JSON. No database's UTF-8 carries lone
surrogates, which is what bytes decoded with ``surrogateescape`` contain.
MariaDB's JSON holds 31 levels of nesting, its TEXT 65,535 bytes, and one
statement at most ``max_allowed_packet`` bytes (16 MiB by default). queuekit
applies the tightest of these bounds on every dialect alike, so an
application behaves the same whichever database it runs on, and a value
that one database would refuse is refused with a queuekit error instead.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Column, String

from queuekit.errors import InvalidArgumentError
from queuekit.models import NAME_LENGTH, TEXT_LENGTH

#: Deepest nesting of objects and arrays in a stored JSON document (MariaDB's limit).
MAX_JSON_NESTING = 31
#: Largest JSON document (payload, schema, partial results), in bytes of its JSON text.
#: MySQL/MariaDB escape the text once more inside the statement, which must stay
#: under ``max_allowed_packet`` (16 MiB by default on MariaDB).
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024

_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text on every dialect, or None."""
    if "\x00" in value:
        return "contains a NUL character, which cannot be stored"
    found = _SURROGATE.search(value)
    if found is not None:
        return (
            f"contains a lone surrogate (U+{ord(found.group()):04X}), which is not valid "
            "Unicode; decode bytes with errors='replace' instead of 'surrogateescape'"
        )
    return None


def column_length(column: Column[Any]) -> int:
    """Most characters a string column stores on every dialect (TEXT: see TEXT_LENGTH)."""
    length = column.type.length if isinstance(column.type, String) else None
    if length is None:
        impl = getattr(column.type, "impl", None)
        length = getattr(impl, "length", None)
    return int(length) if length else TEXT_LENGTH


def check_text(value: object, *, name: str, column: Column[Any]) -> str:
    """A string ``column`` can hold: no NUL, no lone surrogate, not over its length."""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{name} must be a string, not {type(value).__name__}")
    problem = text_problem(value)
    if problem is not None:
        raise InvalidArgumentError(f"{name} {problem}")
    limit = column_length(column)
    if len(value) > limit:
        raise InvalidArgumentError(
            f"{name} must be at most {limit} characters, got {len(value)}; shorten it"
        )
    return value


def _path(parent: str, key: str | int) -> str:
    """A JSON path written as jsonschema writes its errors' paths."""
    return f"{parent}[{key}]" if isinstance(key, int) else f"{parent}.{key}"


def document_problem(value: object) -> tuple[str, str] | None:
    """Why ``value`` cannot be stored as a JSON document, as ``(json_path, message)``, or None.

    Only objects with string keys, arrays, strings, finite numbers, booleans
    and null, at most :data:`MAX_JSON_NESTING` levels deep, every string and
    key storable text, and at most :data:`MAX_DOCUMENT_BYTES` as JSON.
    """
    problem = structure_problem(value)
    if problem is not None:
        return problem
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError as error:  # e.g. an int with more digits than Python converts
        return "$", f"not JSON-serialisable: {error}"
    return size_problem(text)


def size_problem(text: str) -> tuple[str, str] | None:
    """Why a document whose JSON is ``text`` is too large to store, or None."""
    if len(text) > MAX_DOCUMENT_BYTES:
        return "$", (
            f"is {len(text)} bytes as JSON, over the {MAX_DOCUMENT_BYTES} bytes a document "
            "may take; store large data elsewhere and pass a reference to it"
        )
    return None


def structure_problem(value: object) -> tuple[str, str] | None:
    """Like :func:`document_problem` without the size, walking without recursion.

    A deeply nested value must not exhaust the stack, so this runs before
    anything (``json.dumps``, jsonschema) recurses into it.
    """
    pending: list[tuple[object, str, int]] = [(value, "$", 0)]
    while pending:
        node, path, depth = pending.pop()
        if isinstance(node, str):
            problem = text_problem(node)
            if problem is not None:
                return path, problem
        elif isinstance(node, bool) or node is None or isinstance(node, int):
            continue
        elif isinstance(node, float):
            if not math.isfinite(node):
                return path, f"{node!r} is not a JSON number"
        elif isinstance(node, Mapping | list | tuple):
            if depth >= MAX_JSON_NESTING:
                return path, f"nested deeper than {MAX_JSON_NESTING} levels of objects and arrays"
            if isinstance(node, Mapping):
                for key, item in node.items():
                    if not isinstance(key, str):
                        return path, (
                            f"has the non-string key {key!r} ({type(key).__name__}); JSON "
                            "object keys are strings, so it would silently become one"
                        )
                    problem = text_problem(key)
                    if problem is not None:
                        return path, f"a key {problem}"
                    pending.append((item, _path(path, key), depth + 1))
            else:
                pending.extend((item, _path(path, i), depth + 1) for i, item in enumerate(node))
        else:
            return path, f"{type(node).__name__} is not JSON-serialisable"
    return None


def storable_text(text: str, limit: int = TEXT_LENGTH) -> str:
    """``text`` made storable on every dialect, never refused: for error text from tasks.

    NUL becomes ``\\x00``, lone surrogates become U+FFFD (the replacement
    character), and the middle of an over-long text goes, so an attempt's
    outcome can always be written whatever its exception said.
    """
    text = _SURROGATE.sub("\ufffd", text.replace("\x00", "\\x00"))
    if len(text) <= limit:
        return text
    marker = f"\n[... {len(text) - limit} characters omitted ...]\n"
    keep = limit - len(marker)
    head = keep // 2
    return text[:head] + marker + text[len(text) - (keep - head) :]


__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_JSON_NESTING",
    "NAME_LENGTH",
    "TEXT_LENGTH",
    "check_text",
    "column_length",
    "document_problem",
    "size_problem",
    "storable_text",
    "structure_problem",
    "text_problem",
]
