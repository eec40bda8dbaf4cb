"""Initial schema: queuekit's six tables.

Revision ID: queuekit_0001
Revises:
Create Date: 2024-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision: str = "queuekit_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("queuekit",)
depends_on: str | Sequence[str] | None = None

# The revision defines the column types it needs itself, so it keeps building
# the same schema whatever later versions of queuekit's models look like.
# A timestamp: timestamptz on PostgreSQL, microsecond DATETIME on MySQL/MariaDB.
Timestamp = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
JSONDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Name = sa.String(255)
CLAIMABLE = "locked_at IS NULL AND attempts < max_attempts"


def upgrade() -> None:
    op.create_table(
        "queuekit_rate_limits",
        sa.Column("key", Name, nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("interval_ms", sa.BigInteger(), nullable=False),
        sa.Column("available_tokens", sa.Integer(), nullable=False),
        sa.Column("last_refill_at", Timestamp, nullable=False),
        sa.Column("next_refill_at", Timestamp, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.CheckConstraint("capacity > 0", name=op.f("ck_queuekit_rate_limits_capacity")),
        sa.CheckConstraint("interval_ms > 0", name=op.f("ck_queuekit_rate_limits_interval_ms")),
        sa.CheckConstraint(
            "available_tokens >= 0 AND available_tokens <= capacity",
            name=op.f("ck_queuekit_rate_limits_tokens_bound"),
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_queuekit_rate_limits")),
    )
    op.create_index(
        "ix_queuekit_rate_limits_next_refill_at", "queuekit_rate_limits", ["next_refill_at"]
    )

    op.create_table(
        "queuekit_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("task_identifier", Name, nullable=False),
        sa.Column("payload", JSONDocument, nullable=False),
        sa.Column("priority", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("queue_name", Name, nullable=True),
        sa.Column("run_at", Timestamp, nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("max_attempts", sa.Integer(), server_default=sa.text("25"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("job_key", Name, nullable=True),
        sa.Column("job_key_mode", sa.String(32), nullable=True),
        sa.Column("flags", JSONDocument, nullable=False),
        sa.Column("locked_at", Timestamp, nullable=True),
        sa.Column("locked_by", Name, nullable=True),
        sa.Column("correlation_id", sa.Uuid(), nullable=True),
        sa.Column("revision", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("rate_limit_key", Name, nullable=True),
        sa.CheckConstraint(
            "job_key_mode IN ('replace', 'preserve_run_at', 'unsafe_dedupe')",
            name=op.f("ck_queuekit_jobs_job_key_mode"),
        ),
        sa.CheckConstraint("max_attempts >= 1", name=op.f("ck_queuekit_jobs_max_attempts")),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_queuekit_jobs_attempts")),
        sa.ForeignKeyConstraint(
            ["rate_limit_key"],
            ["queuekit_rate_limits.key"],
            name=op.f("fk_queuekit_jobs_rate_limit_key_queuekit_rate_limits"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queuekit_jobs")),
        sa.UniqueConstraint("job_key", name=op.f("uq_queuekit_jobs_job_key")),
        sa.UniqueConstraint("correlation_id", name=op.f("uq_queuekit_jobs_correlation_id")),
    )
    # Claim order; locked and exhausted jobs stay out where partial indexes exist.
    op.create_index(
        "ix_queuekit_jobs_claim",
        "queuekit_jobs",
        ["priority", "run_at", "id"],
        postgresql_where=sa.text(CLAIMABLE),
        sqlite_where=sa.text(CLAIMABLE),
    )
    op.create_index("ix_queuekit_jobs_queue_name", "queuekit_jobs", ["queue_name", "locked_at"])
    op.create_index("ix_queuekit_jobs_locked_at", "queuekit_jobs", ["locked_at"])
    op.create_index("ix_queuekit_jobs_task_identifier", "queuekit_jobs", ["task_identifier"])
    op.create_index("ix_queuekit_jobs_rate_limit_key", "queuekit_jobs", ["rate_limit_key"])

    op.create_table(
        "queuekit_job_queues",
        sa.Column("queue_name", Name, nullable=False),
        sa.Column("locked_at", Timestamp, nullable=True),
        sa.Column("locked_by", Name, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("queue_name", name=op.f("pk_queuekit_job_queues")),
    )

    op.create_table(
        "queuekit_task_identifiers",
        sa.Column("identifier", Name, nullable=False),
        sa.Column("payload_schema", JSONDocument, nullable=True),
        sa.Column("schema_version", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("last_used", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("identifier", name=op.f("pk_queuekit_task_identifiers")),
    )

    op.create_table(
        "queuekit_job_history",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("correlation_id", sa.Uuid(), nullable=False),
        sa.Column("task_identifier", Name, nullable=False),
        sa.Column("payload", JSONDocument, nullable=False),
        sa.Column("queue_name", Name, nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("flags", JSONDocument, nullable=False),
        sa.Column("rate_limit_key", Name, nullable=True),
        sa.Column("worker_id", Name, nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("started_at", Timestamp, nullable=True),
        sa.Column("completed_at", Timestamp, nullable=True),
        sa.Column("queue_time_ms", sa.BigInteger(), nullable=True),
        sa.Column("execution_time_ms", sa.BigInteger(), nullable=True),
        sa.Column("attempt_number", sa.Integer(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_stack", sa.Text(), nullable=True),
        sa.Column("completed_steps", JSONDocument, nullable=True),
        sa.Column("failed_steps", JSONDocument, nullable=True),
        sa.Column("retry_from_step", sa.Text(), nullable=True),
        sa.Column("partial_results", JSONDocument, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=True),
        sa.CheckConstraint(
            "status IN ('started', 'completed', 'failed', 'partial_success')",
            name=op.f("ck_queuekit_job_history_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queuekit_job_history")),
        sa.UniqueConstraint("correlation_id", name=op.f("uq_queuekit_job_history_correlation_id")),
    )
    op.create_index(
        "ix_queuekit_job_history_job_id", "queuekit_job_history", ["job_id", "started_at"]
    )
    op.create_index(
        "ix_queuekit_job_history_status_started_at",
        "queuekit_job_history",
        ["status", "started_at"],
    )
    op.create_index("ix_queuekit_job_history_started_at", "queuekit_job_history", ["started_at"])
    op.create_index("ix_queuekit_job_history_expires_at", "queuekit_job_history", ["expires_at"])
    op.create_index(
        "ix_queuekit_job_history_task_identifier",
        "queuekit_job_history",
        ["task_identifier", "started_at"],
    )

    op.create_table(
        "queuekit_known_crontabs",
        sa.Column("identifier", Name, nullable=False),
        sa.Column("known_since", Timestamp, nullable=False),
        sa.Column("last_execution", Timestamp, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("identifier", name=op.f("pk_queuekit_known_crontabs")),
    )


def downgrade() -> None:
    # Dropping a table drops its indexes; MariaDB would refuse to drop the
    # rate_limit_key index on its own while the foreign key needs it.
    op.drop_table("queuekit_known_crontabs")
    op.drop_table("queuekit_job_history")
    op.drop_table("queuekit_task_identifiers")
    op.drop_table("queuekit_job_queues")
    op.drop_table("queuekit_jobs")
    op.drop_table("queuekit_rate_limits")
