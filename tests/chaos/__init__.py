"""The many-machines chaos suite: worker "hosts" in network namespaces against one PostgreSQL.

Run it as root with ``make chaos`` (every scenario, direct and through
PgBouncer) or ``make chaos-ci`` (a shorter cut). See docs/scaling.md.
"""

from __future__ import annotations
