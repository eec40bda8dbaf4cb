"""FastAPI: build the manager once at start-up, hand it to endpoints as a dependency.

::

    from queuekit.integrations.fastapi import QueueKitDep, queuekit_lifespan

    app = FastAPI(lifespan=queuekit_lifespan(engine))

    @app.post("/orders")
    def place_order(queue: QueueKitDep, session: SessionDep) -> dict[str, int]:
        order = Order(...)
        session.add(order)
        queue.add_job("send_receipt", {"order_id": order.id}, session=session)
        session.commit()  # the order and its job, or neither

The lifespan runs queuekit's migrations first (``migrate=False`` when your
deployment runs ``queuekit db upgrade`` or your Alembic history does), so
the manager's schema check passes. An ``AsyncEngine`` gives an
:class:`~queuekit.AsyncJobManager` (use :data:`AsyncQueueKitDep`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Request
from sqlalchemy import Engine

from queuekit import migrations
from queuekit.errors import InvalidArgumentError
from queuekit.manager import JobManager

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from queuekit.async_manager import AsyncJobManager

#: Where the lifespan keeps the manager: ``app.state.queuekit``.
STATE_ATTRIBUTE = "queuekit"

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


async def start_manager(
    bind: Engine | AsyncEngine, *, migrate: bool = True, schema: str | None = None, **options: Any
) -> JobManager | AsyncJobManager:
    """Migrate queuekit's tables (unless ``migrate=False``), then build the manager.

    ``options`` are the manager's keyword arguments (``retry=``,
    ``validate_formats=``...). An ``AsyncEngine`` gives an ``AsyncJobManager``.
    """
    if isinstance(bind, Engine):
        if migrate:
            migrations.upgrade(bind, schema=schema)
        return JobManager(bind, schema=schema, **options)
    from sqlalchemy.ext.asyncio import AsyncEngine

    from queuekit.async_manager import AsyncJobManager

    if not isinstance(bind, AsyncEngine):
        raise InvalidArgumentError(
            f"queuekit_lifespan needs a sqlalchemy Engine or AsyncEngine, not {type(bind).__name__}"
        )
    if migrate:
        async with bind.begin() as connection:
            await connection.run_sync(lambda sync: migrations.upgrade(sync, schema=schema))
    manager = AsyncJobManager(bind, schema=schema, **options)
    await manager.check_database()
    return manager


def queuekit_lifespan(
    bind: Engine | AsyncEngine,
    *,
    migrate: bool = True,
    schema: str | None = None,
    then: Lifespan | None = None,
    **options: Any,
) -> Lifespan:
    """A FastAPI ``lifespan`` that puts the manager on ``app.state.queuekit``.

    ``then`` is your own lifespan, run inside this one (once the manager exists).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        manager = await start_manager(bind, migrate=migrate, schema=schema, **options)
        setattr(app.state, STATE_ATTRIBUTE, manager)
        try:
            if then is None:
                yield
            else:
                async with then(app):
                    yield
        finally:
            delattr(app.state, STATE_ATTRIBUTE)

    return lifespan


def _manager(request: Request) -> Any:
    manager = getattr(request.app.state, STATE_ATTRIBUTE, None)
    if manager is None:
        raise RuntimeError(
            "no queuekit manager on app.state: create the app with "
            "FastAPI(lifespan=queuekit_lifespan(engine))"
        )
    return manager


def get_manager(request: Request) -> JobManager:
    """The dependency giving endpoints the application's :class:`~queuekit.JobManager`."""
    manager = _manager(request)
    if not isinstance(manager, JobManager):
        raise RuntimeError("the lifespan built an AsyncJobManager: depend on AsyncQueueKitDep")
    return manager


def get_async_manager(request: Request) -> AsyncJobManager:
    """The dependency giving endpoints the application's :class:`~queuekit.AsyncJobManager`."""
    from queuekit.async_manager import AsyncJobManager

    manager = _manager(request)
    if not isinstance(manager, AsyncJobManager):
        raise RuntimeError("the lifespan built a JobManager: depend on QueueKitDep")
    return manager


#: ``queue: QueueKitDep`` in an endpoint's parameters.
QueueKitDep = Annotated[JobManager, Depends(get_manager)]
#: ``queue: AsyncQueueKitDep`` in an async endpoint's parameters. (Typed Any: naming
#: AsyncJobManager here would import SQLAlchemy's asyncio support for every app.)
AsyncQueueKitDep = Annotated[Any, Depends(get_async_manager)]
