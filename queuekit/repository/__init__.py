"""Every statement queuekit runs, in SQLAlchemy Core, shared by all dialects.

Methods take the caller's :class:`~sqlalchemy.engine.Connection` and never
commit: the transaction belongs to whoever opened it. Arguments arrive
already checked (see :mod:`queuekit.validation`); what differs between
databases comes from the dialect seam (:mod:`queuekit.dialects`). Each module
of this package is one mixin over :class:`~queuekit.repository.base.RepositoryBase`
holding one group of statements; a mixin subclasses another only when it calls
that one's methods (enqueue, settling and administration refresh the task
catalogue; administration also lists queues; the hand-off settles and
claims). :class:`Repository` composes them.
"""

from __future__ import annotations

from queuekit.repository.admin import Admin
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
from queuekit.repository.catalog import Catalog
from queuekit.repository.claim import Claim
from queuekit.repository.control import Control
from queuekit.repository.enqueue import Enqueue
from queuekit.repository.handoff import Handoff
from queuekit.repository.outcomes import Outcomes
from queuekit.repository.reading import Reading
from queuekit.repository.registry import Registry


class Repository(Enqueue, Handoff, Claim, Outcomes, Admin, Control, Registry, Catalog, Reading):
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
