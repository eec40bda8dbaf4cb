"""The ``queuekit`` command line (entry point :func:`main`).

The root group and what every command shares live in :mod:`queuekit.cli.app`;
each other module adds one family of commands to it when imported.
"""

from __future__ import annotations

from queuekit.cli import admin, control, database, jobs, maintenance, running, web
from queuekit.cli.app import cli, jsonable, main

__all__ = [
    "admin",
    "cli",
    "control",
    "database",
    "jobs",
    "jsonable",
    "main",
    "maintenance",
    "running",
    "web",
]
