"""Indexes that let stats() read indexes instead of the jobs table.

Revision ID: queuekit_0002
Revises: queuekit_0001
Create Date: 2024-12-06

``stats()`` counts jobs per task identifier and named queue in one pass over
``(task_identifier, queue_name)`` (which replaces the single-column
``task_identifier`` index: every lookup by task identifier can use it as a
prefix), counts exhausted jobs from a partial index holding only them, and
reads the oldest waiting job's ``run_at`` as the first entry of a partial
index of available jobs. MySQL/MariaDB have no partial indexes: there the
exhausted index covers every column its condition needs, so it is still read
without touching the table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "queuekit_0002"
down_revision: str | Sequence[str] | None = "queuekit_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EXHAUSTED = "locked_at IS NULL AND attempts >= max_attempts"
AVAILABLE = "locked_at IS NULL AND attempts < max_attempts"


def upgrade() -> None:
    op.create_index(
        "ix_queuekit_jobs_task_queue", "queuekit_jobs", ["task_identifier", "queue_name"]
    )
    op.drop_index("ix_queuekit_jobs_task_identifier", table_name="queuekit_jobs")
    op.create_index(
        "ix_queuekit_jobs_exhausted",
        "queuekit_jobs",
        ["task_identifier", "queue_name", "locked_at", "attempts", "max_attempts"],
        postgresql_where=sa.text(EXHAUSTED),
        sqlite_where=sa.text(EXHAUSTED),
    )
    op.create_index(
        "ix_queuekit_jobs_available_run_at",
        "queuekit_jobs",
        ["run_at"],
        postgresql_where=sa.text(AVAILABLE),
        sqlite_where=sa.text(AVAILABLE),
    )


def downgrade() -> None:
    op.drop_index("ix_queuekit_jobs_available_run_at", table_name="queuekit_jobs")
    op.drop_index("ix_queuekit_jobs_exhausted", table_name="queuekit_jobs")
    op.create_index("ix_queuekit_jobs_task_identifier", "queuekit_jobs", ["task_identifier"])
    op.drop_index("ix_queuekit_jobs_task_queue", table_name="queuekit_jobs")
