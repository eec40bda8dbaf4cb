"""What a manager learns inside a transaction, kept aside until that transaction commits.

A manager caches facts it read from the database (registered rate-limit
keys, compiled payload schemas) so that enqueues do not read them every
time. A fact read inside a transaction may be that transaction's own
uncommitted write, so it is kept per transaction: the same transaction
reuses it, the shared caches receive it at commit, and a rollback (of the
transaction or of a savepoint in it) discards it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from queuekit.session import after_transaction


@dataclass
class Learned:
    """Facts read in one transaction that has not ended yet."""

    rate_limit_keys: set[str] = field(default_factory=set)
    #: Per task identifier: what :class:`~queuekit.schemas.SchemaCache` keeps.
    schemas: dict[str, Any] = field(default_factory=dict)


class Lessons:
    """The facts of each open transaction, handed to ``on_commit`` when it commits."""

    def __init__(self, on_commit: Callable[[Learned], None]) -> None:
        self._on_commit = on_commit
        self._open: weakref.WeakKeyDictionary[Connection, Learned] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def so_far(self, conn: Connection) -> Learned | None:
        """What ``conn``'s current transaction has taught, if anything."""
        with self._lock:
            return self._open.get(conn)

    def learning(self, conn: Connection) -> Learned:
        """The facts of ``conn``'s current transaction, to add to (kept until it ends)."""
        with self._lock:
            learned = self._open.get(conn)
            if learned is not None:
                return learned
            learned = self._open[conn] = Learned()

        def committed() -> None:
            self._end(conn)
            self._on_commit(learned)

        after_transaction(conn, committed=committed, rolled_back=lambda: self._end(conn))
        return learned

    def _end(self, conn: Connection) -> None:
        with self._lock:
            self._open.pop(conn, None)
