"""The ``queuekit`` command line (entry point :func:`main`).

The root group and what every command shares live in :mod:`queuekit.cli.app`;
each other module adds one family of commands to it when imported, which the
root group does on first use of one of its commands
(:data:`queuekit.cli.app.COMMAND_MODULES`).
"""

from __future__ import annotations

from queuekit.cli.app import cli, jsonable, main

__all__ = ["cli", "jsonable", "main"]
