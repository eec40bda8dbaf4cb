"""What the command line imports to start: only what the command needs.

Start-up time itself is measured by ``make bench`` (benchmarks/startup.py);
these tests pin down the imports that made it slow, so that it stays fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from queuekit import migrations

PROBE = """
import json, sys
from queuekit.cli import main
sys.argv = ["queuekit", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
roots = sorted({name.split(".")[0] for name in sys.modules})
queuekit = sorted(name for name in sys.modules if name.startswith("queuekit."))
sqlalchemy = sorted(name for name in sys.modules if name.startswith("sqlalchemy."))
print(json.dumps({"roots": roots, "queuekit": queuekit, "sqlalchemy": sqlalchemy}), file=sys.stderr)
"""


def imported(*args: str) -> dict[str, list[str]]:
    """The top-level packages and queuekit modules a ``queuekit ARGS...`` run imported."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    )
    answer: dict[str, list[str]] = json.loads(result.stderr.strip().splitlines()[-1])
    return answer


def test_help_imports_neither_sqlalchemy_nor_rich() -> None:
    found = imported("--help")
    assert not {"sqlalchemy", "rich", "alembic", "jsonschema", "croniter"} & set(found["roots"])
    assert "queuekit.manager" not in found["queuekit"]
    assert "queuekit.worker" not in found["queuekit"]


def test_add_on_sqlite_imports_only_what_enqueueing_needs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'startup.db'}"
    engine = sa.create_engine(url)
    migrations.upgrade(engine)
    engine.dispose()
    found = imported("--database-url", url, "add", "t", "{}")
    assert "sqlalchemy" in found["roots"]
    assert not {"alembic", "jsonschema", "rich", "croniter"} & set(found["roots"])
    for module in ("queuekit.worker", "queuekit.cron", "queuekit.maintenance"):
        assert module not in found["queuekit"]
    # Only the invoked command's module, and no other dialect's.
    assert not {"queuekit.cli.admin", "queuekit.cli.running", "queuekit.cli.web"} & set(
        found["queuekit"]
    )
    assert "sqlalchemy.dialects.mysql" not in found["sqlalchemy"]
