"""Every statement queuekit runs, in SQLAlchemy Core, shared by all dialects.

Methods take the caller's :class:`~sqlalchemy.engine.Connection` and never
commit: the transaction belongs to whoever opened it. Arguments arrive
already checked (see :mod:`queuekit.validation`); what differs between
databases comes from the dialect seam (:mod:`queuekit.dialects`). Each module
of this package adds one group of statements on top of the one below it.
"""

from __future__ import annotations

from queuekit.repository.base import (
    CANCELLED_MESSAGE,
    CHUNK,
    EXPIRED_LOCK_MESSAGE,
    FORCE_UNLOCK_MESSAGE,
    FinishedJob,
    Outcome,
    OutcomeKind,
    chunks,
    error_text,
)
from queuekit.repository.registry import Registry


class Repository(Registry):
    """queuekit's statements over one dialect and an optional named schema."""


__all__ = [
    "CANCELLED_MESSAGE",
    "CHUNK",
    "EXPIRED_LOCK_MESSAGE",
    "FORCE_UNLOCK_MESSAGE",
    "FinishedJob",
    "Outcome",
    "OutcomeKind",
    "Repository",
    "chunks",
    "error_text",
]
