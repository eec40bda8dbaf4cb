"""Trace context stored with each job.

Revision ID: queuekit_0005
Revises: queuekit_0004
Create Date: 2025-01-20

- ``queuekit_jobs.trace_context``: a nullable JSON column holding the
  enqueuer's W3C trace context (``traceparent`` and ``tracestate``) when
  tracing is on (``queuekit[otel]``); NULL otherwise, so jobs enqueued
  without tracing cost nothing more.

Downgrading drops the column (stored trace contexts are lost; jobs keep
running without their link to the enqueuer's trace).

The revision defines the column type it needs itself, so it keeps building
the same schema whatever later versions of queuekit's models look like.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "queuekit_0005"
down_revision: str | Sequence[str] | None = "queuekit_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _schema() -> str | None:
    # ALTER statements name their table as given, unlike Table-based operations
    # that follow the schema_translate_map of a named schema: pass it explicitly.
    translate = op.get_bind().get_execution_options().get("schema_translate_map") or {}
    schema: str | None = translate.get(None)
    return schema


def upgrade() -> None:
    op.add_column(
        "queuekit_jobs",
        sa.Column("trace_context", JSONDocument, nullable=True),
        schema=_schema(),
    )


def downgrade() -> None:
    # A plain ALTER TABLE … DROP COLUMN (SQLite has it since 3.35): rebuilding
    # the jobs table in batch mode would be slower and needlessly touch its indexes.
    op.drop_column("queuekit_jobs", "trace_context", schema=_schema())
