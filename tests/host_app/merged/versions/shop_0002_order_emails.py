"""Order e-mails: which queuekit job sends which order's confirmation.

Depends on queuekit's first revision, which creates ``queuekit_jobs``, so
``alembic upgrade heads`` always runs that one first.

Revision ID: shop_0002
Revises: shop_0001
Create Date: 2024-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "shop_0002"
down_revision: str | Sequence[str] | None = "shop_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "queuekit_0001"


def upgrade() -> None:
    op.create_table(
        "order_emails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_emails_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["queuekit_jobs.id"],
            name=op.f("fk_order_emails_job_id_queuekit_jobs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_emails")),
    )


def downgrade() -> None:
    op.drop_table("order_emails")
