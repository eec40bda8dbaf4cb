"""What every part of :class:`~queuekit.JobManager` may call on the manager it belongs to.

``JobManager`` is assembled from mixins, one per role (claims, administration,
inspection, control, support). Each reads the repository and runs work
through these methods, which ``JobManager`` defines; declaring them once here
lets each part be type-checked on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import Connection

from queuekit.repository import Repository
from queuekit.session import Confirm, SessionLike
from queuekit.types import Job
from queuekit.validation import NewJob

T = TypeVar("T")


class ManagerPart:
    """The manager's repository and the ways it runs work, as its parts see them."""

    repository: Repository

    def _run(
        self,
        session: SessionLike,
        work: Callable[[Connection], T],
        *,
        confirm: Confirm[T] | None = None,
    ) -> T:
        """Run work in the caller's transaction, or in one of the manager's own."""
        raise NotImplementedError

    def _read(self, session: SessionLike, work: Callable[[Connection], T]) -> T:
        """Run work that writes nothing (a lost COMMIT cannot matter to it)."""
        raise NotImplementedError

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
