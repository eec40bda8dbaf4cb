"""Names compare exactly on MySQL/MariaDB.

Revision ID: queuekit_0003
Revises: queuekit_0002
Create Date: 2024-12-08

MySQL/MariaDB's default collations ignore case, accents and trailing spaces,
so ``Mail`` and ``mail`` were one named queue, one job key (an enqueue of one
while the other existed could not settle) and one task identifier. Every name
column now uses a binary collation without padding (:func:`exact_collation`).
PostgreSQL and SQLite already compare exactly: nothing changes there.

Downgrading restores the database's default collation; it fails if names that
differ only in case, accents or trailing spaces exist in one unique column.

The revision defines what it needs itself, so it keeps building the same
schema whatever later versions of queuekit's models look like.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect

revision: str = "queuekit_0003"
down_revision: str | Sequence[str] | None = "queuekit_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (table, column, nullable) of every name column.
NAME_COLUMNS = (
    ("queuekit_rate_limits", "key", False),
    ("queuekit_jobs", "task_identifier", False),
    ("queuekit_jobs", "queue_name", True),
    ("queuekit_jobs", "job_key", True),
    ("queuekit_jobs", "locked_by", True),
    ("queuekit_jobs", "rate_limit_key", True),
    ("queuekit_job_queues", "queue_name", False),
    ("queuekit_job_queues", "locked_by", True),
    ("queuekit_task_identifiers", "identifier", False),
    ("queuekit_job_history", "task_identifier", False),
    ("queuekit_job_history", "queue_name", True),
    ("queuekit_job_history", "rate_limit_key", True),
    ("queuekit_job_history", "worker_id", True),
    ("queuekit_known_crontabs", "identifier", False),
)
RATE_LIMIT_FK = "fk_queuekit_jobs_rate_limit_key_queuekit_rate_limits"
NAME_LENGTH = 255


def exact_collation(dialect: Dialect) -> str:
    """The MySQL/MariaDB collation that compares names byte for byte, trailing spaces too."""
    if getattr(dialect, "is_mariadb", False):
        return "utf8mb4_nopad_bin"
    if tuple(dialect.server_version_info or (8, 0, 17)) < (8, 0, 17):
        return "utf8mb4_bin"  # the only binary one before utf8mb4_0900_bin; pads spaces
    return "utf8mb4_0900_bin"


def _retype(name_type: sa.types.TypeEngine[str]) -> None:
    # ALTER statements name their table as given, unlike Table-based operations
    # that follow the schema_translate_map of a named schema: pass it explicitly.
    translate = op.get_bind().get_execution_options().get("schema_translate_map") or {}
    schema = translate.get(None)
    # Both ends of a foreign key must share a collation: drop it while they change.
    op.drop_constraint(RATE_LIMIT_FK, "queuekit_jobs", type_="foreignkey", schema=schema)
    for table, column, nullable in NAME_COLUMNS:
        op.alter_column(table, column, type_=name_type, existing_nullable=nullable, schema=schema)
    op.create_foreign_key(
        RATE_LIMIT_FK,
        "queuekit_jobs",
        "queuekit_rate_limits",
        ["rate_limit_key"],
        ["key"],
        ondelete="SET NULL",
        source_schema=schema,
        referent_schema=schema,
    )


def upgrade() -> None:
    dialect = op.get_bind().dialect
    if dialect.name not in ("mysql", "mariadb"):
        return
    _retype(mysql.VARCHAR(NAME_LENGTH, charset="utf8mb4", collation=exact_collation(dialect)))


def downgrade() -> None:
    if op.get_bind().dialect.name not in ("mysql", "mariadb"):
        return
    _retype(sa.String(NAME_LENGTH))
