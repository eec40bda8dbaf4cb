"""Engines queuekit makes itself, connection labels, and a worker's connection budget.

queuekit never changes how the host application's engine connects, with one
exception a worker needs to be told apart on the server: while a
:class:`~queuekit.Worker` runs, new connections of its manager's engine are
labelled with the worker id (PostgreSQL ``application_name``, unless the URL
or ``connect_args`` already set one). Keepalives and pooler settings apply
only to engines made by :func:`create_engine` (the command line uses it);
hosts pass the same arguments to their own engine, or call it themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine, event
from sqlalchemy.engine import URL

from queuekit.defaults import POOLERS
from queuekit.dialects import support_for
from queuekit.errors import InvalidArgumentError

#: Pooled connections a worker uses at once: the fetch loop, the flusher and
#: the housekeeper (heartbeats), each one at a time.
WORKER_POOLED = 3


def create_engine(url: str | URL, *, pooler: str | None = None, **kwargs: Any) -> Engine:
    """A SQLAlchemy engine with the connection settings queuekit recommends.

    On PostgreSQL: client TCP keepalives (a cut link is noticed within about
    15 seconds), and with ``pooler="transaction"`` (PgBouncer in
    transaction-pooling mode) no server-side prepared statements. Settings
    given in the URL's query or in ``connect_args`` win. Other keyword
    arguments go to :func:`sqlalchemy.create_engine`.
    """
    if pooler is not None and pooler not in POOLERS:
        raise InvalidArgumentError(f"pooler must be one of {POOLERS} or None, not {pooler!r}")
    parsed = sa.make_url(url)  # a malformed URL raises sqlalchemy's ArgumentError
    support = support_for(parsed.get_dialect())
    if pooler is not None and support.name != "postgresql":
        raise InvalidArgumentError("pooler= applies to PostgreSQL URLs only")
    given: Mapping[str, Any] = kwargs.pop("connect_args", {})
    connect_args = {
        name: value
        for name, value in support.client_connect_args(pooler=pooler).items()
        if name not in parsed.query
    }
    connect_args.update(given)
    return sa.create_engine(parsed, connect_args=connect_args, **kwargs)


def label_connections(engine: Engine, name: str) -> Callable[[], None]:
    """Name ``engine``'s new connections after ``name`` on the server; returns the undo.

    A label the URL or ``connect_args`` already set is kept.
    """
    label = support_for(engine.dialect).connection_label(name)
    if not label:
        return lambda: None

    def add_label(_dialect: Any, _record: Any, _cargs: Any, params: dict[str, Any]) -> None:
        for key, value in label.items():
            params.setdefault(key, value)

    event.listen(engine, "do_connect", add_label)

    def undo() -> None:
        if event.contains(engine, "do_connect", add_label):
            event.remove(engine, "do_connect", add_label)

    return undo


def worker_budget(*, maintenance: bool, cron: bool, listening: bool) -> int:
    """Most database connections one worker holds at once (its tasks' own not included).

    The fetch loop, the flusher and the housekeeper use one pooled
    connection each; maintenance and cron one more each when they run in
    the worker; listening holds one dedicated connection.
    """
    return WORKER_POOLED + int(maintenance) + int(cron) + int(listening)


__all__ = ["POOLERS", "WORKER_POOLED", "create_engine", "label_connections", "worker_budget"]
