"""The shop's own tables, on its own MetaData.

``metadata`` holds what every shop has. ``job_link_metadata`` holds a table
with a foreign key to ``queuekit_jobs``; only a shop that merges queuekit's
revisions into its own history (the ``merged`` environment) can have it,
because only there can one of its revisions depend on queuekit's.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, MetaData, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from queuekit.models import jobs

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of the shop's core tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Customer(Base):
    """Someone who buys things."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)


class Order(Base):
    """An order; placing one sends a confirmation e-mail through a job."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    total_cents: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class JobLinkBase(DeclarativeBase):
    """Declarative base of the tables that point at queuekit's (merged lineage only)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class OrderEmail(JobLinkBase):
    """Which queuekit job sends which order's confirmation e-mail."""

    __tablename__ = "order_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey(Order.__table__.c.id))
    # Completed jobs are deleted from queuekit_jobs (they live on in its
    # history), so a reference to one must let go of it: SET NULL.
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(jobs.c.id, ondelete="SET NULL"))


metadata = Base.metadata
job_link_metadata = JobLinkBase.metadata
