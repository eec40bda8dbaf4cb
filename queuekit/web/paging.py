"""Keyset pages of the dashboard's lists: never OFFSET, always an index order.

Jobs go by their time-ordered (UUIDv7) ids. History ids are random (an
attempt's id is its claim id), so history goes by ``(started_at, id)``; its
cursors are ids all the same, and the cursor row's ``started_at`` is read by
that id.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, or_, select

from queuekit.models import job_history

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a keyset list: the rows, newest first, and the cursors around them."""

    rows: list[T]
    older: uuid.UUID | None
    newer: uuid.UUID | None


def keyset(
    statement: Select[Any],
    id_column: Any,
    where: Sequence[ColumnElement[bool]],
    before: uuid.UUID | None,
    after: uuid.UUID | None,
    limit: int,
) -> Select[Any]:
    """``statement`` limited to one page around a cursor, one row more to see if more exist."""
    if after is not None:
        return statement.where(*where, id_column > after).order_by(id_column.asc()).limit(limit + 1)
    if before is not None:
        where = [*where, id_column < before]
    return statement.where(*where).order_by(id_column.desc()).limit(limit + 1)


def keyset_by_time(
    statement: Select[Any],
    where: Sequence[ColumnElement[bool]],
    before: uuid.UUID | None,
    after: uuid.UUID | None,
    limit: int,
) -> Select[Any]:
    """Like :func:`keyset` for history, ordered by ``(started_at, id)``.

    The range condition on ``started_at`` alone lets an index on it start at
    the cursor instead of reading every newer row first. A cursor whose row
    has expired since gives an empty page.
    """
    order = (job_history.c.started_at, job_history.c.id)
    cursor = after if after is not None else before
    if cursor is None:
        return statement.where(*where).order_by(*(c.desc() for c in order)).limit(limit + 1)
    at = select(job_history.c.started_at).where(job_history.c.id == cursor).scalar_subquery()
    if after is not None:
        bound = [order[0] >= at, or_(order[0] > at, order[1] > cursor)]
        return statement.where(*where, *bound).order_by(*order).limit(limit + 1)
    bound = [order[0] <= at, or_(order[0] < at, order[1] < cursor)]
    return statement.where(*where, *bound).order_by(*(c.desc() for c in order)).limit(limit + 1)


def page_of(
    rows: list[Any], before: uuid.UUID | None, after: uuid.UUID | None, limit: int
) -> Page[Any]:
    """Turn the ``limit + 1`` rows of :func:`keyset` into a page with its cursors."""
    more = len(rows) > limit
    rows = rows[:limit]
    if after is not None:
        rows.reverse()
        older = rows[-1].id if rows else None
        newer = rows[0].id if rows and more else None
        return Page(rows, older, newer)
    older = rows[-1].id if rows and more else None
    newer = rows[0].id if rows and before is not None else None
    return Page(rows, older, newer)
