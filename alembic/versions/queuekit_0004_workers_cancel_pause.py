"""Live workers, paused tasks and cancelled attempts.

Revision ID: queuekit_0004
Revises: queuekit_0003
Create Date: 2025-01-10

- ``queuekit_workers``: one row per running worker (id, host, pid, start,
  last heartbeat, task identifiers, concurrency, queuekit version).
- ``queuekit_task_identifiers.paused_at``: claims skip the jobs of a paused task.
- History status ``cancelled``: a job cancelled while waiting gains a row
  with it; a running one's attempt closes with it.

Downgrading drops the workers table and the pause column, and turns
``cancelled`` history rows into ``failed`` ones (their message still says
``cancelled``), the closest status the older schema has.

The revision defines the column types it needs itself, so it keeps building
the same schema whatever later versions of queuekit's models look like.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect

revision: str = "queuekit_0004"
down_revision: str | Sequence[str] | None = "queuekit_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HISTORY = "queuekit_job_history"
STATUS_CHECK = "ck_queuekit_job_history_status"
OLD_STATUSES = "status IN ('started', 'completed', 'failed', 'partial_success')"
NEW_STATUSES = "status IN ('started', 'completed', 'failed', 'partial_success', 'cancelled')"

Timestamp = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
JSONDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _name_type(dialect: Dialect) -> sa.types.TypeEngine[str]:
    """A name column: byte-exact on MySQL/MariaDB, as revision queuekit_0003 made them."""
    if dialect.name not in ("mysql", "mariadb"):
        return sa.String(255)
    if getattr(dialect, "is_mariadb", False):
        collation = "utf8mb4_nopad_bin"
    elif tuple(dialect.server_version_info or (8, 0, 17)) < (8, 0, 17):
        collation = "utf8mb4_bin"
    else:
        collation = "utf8mb4_0900_bin"
    return mysql.VARCHAR(255, charset="utf8mb4", collation=collation)


def _schema() -> str | None:
    # ALTER statements name their table as given, unlike Table-based operations
    # that follow the schema_translate_map of a named schema: pass it explicitly.
    translate = op.get_bind().get_execution_options().get("schema_translate_map") or {}
    schema: str | None = translate.get(None)
    return schema


def _replace_status_check(condition: str, schema: str | None) -> None:
    # SQLite cannot alter a constraint: batch mode rebuilds the table there.
    with op.batch_alter_table(HISTORY, schema=schema) as batch:
        batch.drop_constraint(op.f(STATUS_CHECK), type_="check")
        batch.create_check_constraint(op.f(STATUS_CHECK), sa.text(condition))


def upgrade() -> None:
    schema = _schema()
    op.create_table(
        "queuekit_workers",
        sa.Column("worker_id", _name_type(op.get_bind().dialect), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", Timestamp, nullable=False),
        sa.Column("last_seen", Timestamp, nullable=False),
        sa.Column("task_identifiers", JSONDocument, nullable=True),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_queuekit_workers")),
        schema=schema,
    )
    op.add_column(
        "queuekit_task_identifiers", sa.Column("paused_at", Timestamp, nullable=True), schema=schema
    )
    _replace_status_check(NEW_STATUSES, schema)


def downgrade() -> None:
    schema = _schema()
    history = sa.table("queuekit_job_history", sa.column("status"), schema=schema)
    op.execute(history.update().where(history.c.status == "cancelled").values(status="failed"))
    _replace_status_check(OLD_STATUSES, schema)
    with op.batch_alter_table("queuekit_task_identifiers", schema=schema) as batch:
        batch.drop_column("paused_at")
    op.drop_table("queuekit_workers", schema=schema)
