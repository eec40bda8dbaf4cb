"""Which tables belong to queuekit, for Alembic's autogenerate filters.

A host application's environment passes :func:`include_name` and
:func:`include_object` so that its autogenerate leaves queuekit's tables
alone; queuekit's own environment (:func:`environment_options`) considers
only queuekit's tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from queuekit.lineage import check_active_revision
from queuekit.models import metadata

#: Every queuekit table's name starts with this.
TABLE_PREFIX = "queuekit_"
#: queuekit's own Alembic version table (its branch is recorded apart from the host's).
VERSION_TABLE = "queuekit_alembic_version"

__all__ = [
    "TABLE_PREFIX",
    "VERSION_TABLE",
    "environment_options",
    "include_name",
    "include_object",
    "is_queuekit_table",
]


def is_queuekit_table(name: str | None) -> bool:
    """Whether a table name belongs to queuekit (its version table included)."""
    return name is not None and name.startswith(TABLE_PREFIX)


def _table_of_name(
    name: str | None, type_: str, parent_names: Mapping[str, str | None]
) -> str | None:
    return name if type_ == "table" else parent_names.get("table_name")


def _table_of_object(object: Any, name: str | None, type_: str) -> str | None:
    if type_ == "table":
        return name
    table = getattr(object, "table", None)
    return getattr(table, "name", None)


def include_name(name: str | None, type_: str, parent_names: Mapping[str, str | None]) -> bool:
    """For a host's ``context.configure(include_name=...)``: leave queuekit's tables alone.

    Under ``alembic revision --autogenerate`` it also refuses a new revision
    aimed at queuekit's branch (see :mod:`queuekit.lineage`).
    """
    check_active_revision()
    return not is_queuekit_table(_table_of_name(name, type_, parent_names))


def include_object(
    object: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """For a host's ``context.configure(include_object=...)``: leave queuekit's tables alone.

    Under ``alembic revision --autogenerate`` it also refuses a new revision
    aimed at queuekit's branch (see :mod:`queuekit.lineage`).
    """
    check_active_revision()
    return not is_queuekit_table(_table_of_object(object, name, type_))


def _include_own_name(name: str | None, type_: str, parent_names: Mapping[str, str | None]) -> bool:
    """queuekit's own environment considers only queuekit's tables."""
    table = _table_of_name(name, type_, parent_names)
    return table is None or is_queuekit_table(table)


def _include_own_object(
    object: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """queuekit's own environment considers only queuekit's tables."""
    table = _table_of_object(object, name, type_)
    return table is None or is_queuekit_table(table)


def environment_options(schema: str | None = None) -> dict[str, Any]:
    """``context.configure()`` options of queuekit's own environment (autogenerate included)."""
    return {
        "target_metadata": metadata,
        "version_table": VERSION_TABLE,
        "version_table_schema": schema,
        "include_name": _include_own_name,
        "include_object": _include_own_object,
        "compare_type": True,
        "compare_server_default": True,
    }
