"""The transactional-enqueue examples of docs/transactions.md, run on every dialect.

The code under test is the documentation's own: each named block (see
``doc_blocks``) is executed in a module whose ``engine`` and ``manager`` the
test provides for its database, and the test then checks what the example
promises: the job exists if and only if the business rows do (SPEC §1, §9).
"""

from __future__ import annotations

import asyncio
import types
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from conformance import row_counts
from doc_blocks import DOCS, doc_module, named_block, run
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session

from queuekit import AsyncJobManager, JobManager, migrations

GUIDE = DOCS / "transactions.md"
#: The async driver of each test database's sync driver (the same family on both sides).
ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql+psycopg": "postgresql+psycopg",
    "mysql+pymysql": "mysql+aiomysql",
}


@pytest.fixture
def shop(empty_url: str) -> Iterator[types.ModuleType]:
    """The guide's models and examples, on a fresh database of the parametrized dialect."""
    engine = sa.create_engine(empty_url)
    with doc_module(f"shop_{uuid.uuid4().hex}") as module:
        run(named_block(GUIDE, "models"), module)
        module.Base.metadata.create_all(engine)
        migrations.upgrade(engine)
        module.engine = engine
        module.manager = JobManager(engine)
        with Session(engine) as session, session.begin():
            session.add(module.Customer(email="ada@example.com"))
        for name in ("place-order", "helpers", "sign-up-broken"):
            run(named_block(GUIDE, name), module)
        run(named_block(GUIDE, "sign-up-enqueue-first"), module)
        run(named_block(GUIDE, "sign-up-savepoint"), module)
        yield module
    engine.dispose()


def customers(shop: types.ModuleType) -> list[str]:
    """E-mail addresses of every customer."""
    with Session(shop.engine) as session:
        return sorted(session.scalars(sa.select(shop.Customer.email)))


def orders(shop: types.ModuleType) -> list[int]:
    """Ids of every order."""
    with Session(shop.engine) as session:
        return sorted(session.scalars(sa.select(shop.Order.id)))


def payloads(shop: types.ModuleType, task: str) -> list[dict[str, Any]]:
    """Payloads of the waiting jobs of one task."""
    return [job.payload for job in shop.manager.list_jobs(task_identifier=task)]


def test_order_and_job_commit_together(shop: types.ModuleType) -> None:
    order_id = shop.place_order("ada@example.com", 2_500)
    assert orders(shop) == [order_id]
    assert payloads(shop, "send_order_confirmation") == [{"order_id": order_id}]
    (claimed,) = shop.manager.get_jobs("mailer")
    assert claimed.payload == {"order_id": order_id}


def test_rollback_leaves_neither_order_nor_job(shop: types.ModuleType) -> None:
    before = row_counts(shop.engine)
    with pytest.raises(shop.PaymentDeclined):
        shop.place_order("ada@example.com", 250_000)
    assert orders(shop) == []
    assert row_counts(shop.engine) == before  # no job, no task identifier, nothing


def test_async_session(shop: types.ModuleType, empty_url: str) -> None:
    url = sa.make_url(empty_url)
    async_url = url.set(drivername=ASYNC_DRIVERS[url.drivername])
    shop.async_engine = create_async_engine(async_url)
    shop.async_manager = AsyncJobManager(shop.async_engine)
    run(named_block(GUIDE, "place-order-async"), shop)
    before = row_counts(shop.engine)

    async def scenario() -> int:
        # No explicit check_database(): the first call runs inside the example's own
        # transaction, whose SQLite write lock the schema check must not wait for.
        try:
            order_id: int = await shop.place_order_async("ada@example.com", 4_200)
            with pytest.raises(shop.PaymentDeclined):
                await shop.place_order_async("ada@example.com", 999_999)
            return order_id
        finally:
            await shop.async_engine.dispose()

    order_id = asyncio.run(scenario())
    assert orders(shop) == [order_id]
    assert payloads(shop, "send_order_confirmation") == [{"order_id": order_id}]
    after = row_counts(shop.engine)
    assert after["queuekit_jobs"] == before["queuekit_jobs"] + 1


def test_a_helper_that_commits_breaks_atomicity(shop: types.ModuleType) -> None:
    """The problem the two fixes solve is real: the customer stays, the job is lost."""
    with pytest.raises(shop.Blocked):
        shop.sign_up_broken("eve@spam.example")
    assert "eve@spam.example" in customers(shop)
    assert payloads(shop, "send_welcome") == []


def test_fix_enqueue_before_the_helper_commits(shop: types.ModuleType) -> None:
    shop.sign_up("bob@example.com")
    assert "bob@example.com" in customers(shop)
    assert payloads(shop, "send_welcome") == [{"email": "bob@example.com"}]

    with pytest.raises(sa.exc.IntegrityError):  # the helper's own commit fails
        shop.sign_up("bob@example.com")
    with pytest.raises(shop.Blocked):  # a check before the helper fails
        shop.sign_up("eve@spam.example")
    assert customers(shop) == ["ada@example.com", "bob@example.com"]
    assert payloads(shop, "send_welcome") == [{"email": "bob@example.com"}]


def test_fix_outer_transaction_with_savepoints(shop: types.ModuleType) -> None:
    shop.sign_up_atomically("carol@example.com")
    with Session(shop.engine) as session:
        carol = session.scalars(
            sa.select(shop.Customer).where(shop.Customer.email == "carol@example.com")
        ).one()
    assert payloads(shop, "send_welcome") == [{"customer_id": carol.id}]

    with pytest.raises(shop.Blocked):  # fails after the helper committed
        shop.sign_up_atomically("mallory@spam.example")
    with pytest.raises(sa.exc.IntegrityError):  # fails inside the helper's commit
        shop.sign_up_atomically("carol@example.com")
    assert customers(shop) == ["ada@example.com", "carol@example.com"]
    assert payloads(shop, "send_welcome") == [{"customer_id": carol.id}]
