"""The FastAPI and Flask helpers in small applications on SQLite.

The job is enqueued in the request's own transaction: it exists if and only
if the request's business write commits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import pytest
import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException
from fastapi.testclient import TestClient
from flask import Flask, request
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from queuekit import AsyncJobManager, JobManager, SchemaNotMigratedError
from queuekit.integrations.fastapi import AsyncQueueKitDep, QueueKitDep, queuekit_lifespan
from queuekit.integrations.flask import QueueKit


def orders_table(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER)")


def counts(engine: sa.Engine) -> tuple[int, int]:
    """(orders, queued jobs)."""
    with engine.connect() as conn:
        orders = conn.exec_driver_sql("SELECT count(*) FROM orders").scalar_one()
        jobs = conn.exec_driver_sql("SELECT count(*) FROM queuekit_jobs").scalar_one()
    return orders, jobs


def get_session(queue: QueueKitDep) -> Iterator[Session]:
    """The application's request-scoped Session (here on the manager's engine)."""
    with Session(queue.engine) as session:
        yield session


# At module level: FastAPI resolves endpoint annotations in the module's namespace.
SessionDep = Annotated[Session, Depends(get_session)]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    yield engine
    engine.dispose()


def test_fastapi_lifespan_migrates_and_endpoints_enqueue_in_the_request_session(
    engine: sa.Engine,
) -> None:
    started: list[str] = []

    @asynccontextmanager
    async def own_lifespan(app: FastAPI) -> AsyncIterator[None]:
        started.append(type(app.state.queuekit).__name__)
        yield

    app = FastAPI(lifespan=queuekit_lifespan(engine, then=own_lifespan))

    @app.post("/orders/{total}")
    def place_order(total: int, queue: QueueKitDep, session: SessionDep) -> dict[str, Any]:
        order_id = session.execute(
            sa.text("INSERT INTO orders (total) VALUES (:t) RETURNING id"), {"t": total}
        ).scalar_one()
        job = queue.add_job("send_receipt", {"order_id": order_id}, session=session)
        if total < 0:
            raise HTTPException(400, "negative total")  # before commit: nothing stays
        session.commit()
        return {"order": order_id, "job": str(job.id)}

    with TestClient(app) as client:
        assert started == ["JobManager"]
        orders_table(engine)
        assert client.post("/orders/10").status_code == 200
        assert client.post("/orders/-1").status_code == 400
    assert counts(engine) == (1, 1)
    (job,) = JobManager(engine).list_jobs()
    assert job.payload == {"order_id": 1}


def test_fastapi_lifespan_without_migrations_refuses_an_unmigrated_database(
    engine: sa.Engine,
) -> None:
    app = FastAPI(lifespan=queuekit_lifespan(engine, migrate=False))
    with pytest.raises(SchemaNotMigratedError, match="queuekit db upgrade"), TestClient(app):
        pass


def test_fastapi_async_engine_gives_an_async_manager(tmp_path: Path) -> None:
    async_engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'async.db'}")
    app = FastAPI(lifespan=queuekit_lifespan(async_engine))

    @app.post("/ping")
    async def ping(queue: AsyncQueueKitDep) -> dict[str, str]:
        assert isinstance(queue, AsyncJobManager)
        async with AsyncSession(async_engine) as session, session.begin():
            job = await queue.add_job("ping", {}, session=session)
        return {"job": str(job.id)}

    @app.get("/sync")
    def wrong(queue: QueueKitDep) -> None:
        raise AssertionError("not reached")

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/ping").status_code == 200
        assert client.get("/sync").status_code == 500
    sync_engine = sa.create_engine(f"sqlite:///{tmp_path / 'async.db'}")
    assert len(JobManager(sync_engine).list_jobs()) == 1
    sync_engine.dispose()


def test_flask_extension_init_app(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'flask.db'}"
    queue = QueueKit()

    def create_app() -> Flask:
        app = Flask(__name__)
        app.config.update(QUEUEKIT_DATABASE_URL=url, QUEUEKIT_MIGRATE=True)
        queue.init_app(app)
        return app

    app = create_app()
    queue_engine = app.extensions["queuekit"].engine
    orders_table(queue_engine)

    @app.post("/orders/<int:total>")
    def place_order(total: int) -> dict[str, int]:
        with Session(queue.manager.engine) as session, session.begin():
            order_id = session.execute(
                sa.text("INSERT INTO orders (total) VALUES (:t) RETURNING id"), {"t": total}
            ).scalar_one()
            queue.manager.add_job("send_receipt", {"order_id": order_id}, session=session)
            if request.args.get("fail"):
                raise ValueError("the request fails after enqueueing")
        return {"order": order_id}

    client = app.test_client()
    assert client.post("/orders/5").status_code == 200
    app.config["PROPAGATE_EXCEPTIONS"] = False
    assert client.post("/orders/6?fail=1").status_code == 500
    assert counts(queue_engine) == (1, 1)
    with app.app_context():
        assert queue.manager is app.extensions["queuekit"]
    queue_engine.dispose()


def test_flask_extension_needs_a_database() -> None:
    app = Flask(__name__)
    with pytest.raises(ValueError, match="QUEUEKIT_DATABASE_URL"):
        QueueKit(app)
    other = Flask("other")
    with other.app_context(), pytest.raises(RuntimeError, match="init_app"):
        _ = QueueKit().manager
