"""The old home of :func:`check_server_version`, now in :mod:`queuekit.dialects`."""

from __future__ import annotations

from queuekit.dialects import check_server_version

__all__ = ["check_server_version"]
