"""What every part of :class:`~queuekit.JobManager` may call on the manager it belongs to.

``JobManager`` is assembled from mixins, one per role (claims, administration,
inspection, control, support). Each reads the repository and runs work
through these methods: ``_run`` and ``_read`` are defined here, over the
manager's transactions; ``_enqueue`` and ``_batched``, which need the rest of
the manager, are declared here (so each part type-checks on its own) and
defined by ``JobManager``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import Connection

from queuekit.repository import Repository
from queuekit.session import Confirm, SessionLike, Transactions, result_stands
from queuekit.types import Job
from queuekit.validation import NewJob

T = TypeVar("T")


class ManagerPart:
    """The manager's repository and the ways it runs work, as its parts see them."""

    repository: Repository
    transactions: Transactions

    def _run(
        self,
        session: SessionLike,
        work: Callable[[Connection], T],
        *,
        confirm: Confirm[T] | None = None,
    ) -> T:
        """Run work in the caller's transaction, or in one of the manager's own."""
        return self.transactions.run(session, work, confirm=confirm)

    def _read(self, session: SessionLike, work: Callable[[Connection], T]) -> T:
        """Run work that writes nothing (a lost COMMIT cannot matter to it).

        On SQLite it reads its snapshot without taking the write lock, so a
        read never waits for writers (a busy worker could hold it for seconds).
        """
        return self.transactions.run(session, work, confirm=result_stands, reading=True)

    def _enqueue(
        self,
        session: SessionLike,
        operation: str,
        build: Callable[[Connection], Sequence[NewJob]],
        *,
        confirm: Confirm[list[Job]] | None = None,
    ) -> list[Job]:
        """Check and insert the jobs ``build`` makes."""
        raise NotImplementedError

    def _batched(self, session: SessionLike, step: Callable[[Connection, int], int]) -> int:
        """Repeat a bounded maintenance step, one transaction each, until it finds nothing."""
        raise NotImplementedError
