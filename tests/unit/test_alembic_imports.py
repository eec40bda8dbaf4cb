"""queuekit's Alembic scripts lean on no live queuekit code they could change with.

A revision that imported a model type (or any other queuekit code) would build
a different schema whenever that code changed, and an old database would no
longer match its recorded revision. The environment may use only the small
API :mod:`queuekit.migrations` keeps for it.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TypeGuard

import pytest

ALEMBIC = Path(__file__).resolve().parents[2] / "alembic"
REVISIONS = sorted((ALEMBIC / "versions").glob("*.py"))
#: queuekit modules a revision may import, and the names it may take from them: none.
REVISION_MAY_IMPORT: dict[str, set[str]] = {}
#: What env.py may import from queuekit.
ENV_MAY_IMPORT = {"queuekit.migrations": {"environment_options", "migration_connection"}}


def queuekit_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every queuekit import in a script, anywhere in it."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, "*") for alias in node.names if _is_queuekit(alias.name)]
        elif isinstance(node, ast.ImportFrom) and _is_queuekit(node.module or ""):
            found += [(node.module or "", alias.name) for alias in node.names]
        elif isinstance(node, ast.Constant) and _names_a_module(node.value):
            found.append((node.value, "*"))  # importlib.import_module("queuekit.x") and the like
    return found


def _names_a_module(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value.startswith("queuekit.") and " " not in value


def _is_queuekit(module: str) -> bool:
    return module == "queuekit" or module.startswith("queuekit.")


def disallowed(path: Path, allowed: dict[str, set[str]]) -> list[tuple[str, str]]:
    return [
        (module, name)
        for module, name in queuekit_imports(path)
        if name not in allowed.get(module, set())
    ]


def test_there_are_revisions_to_check() -> None:
    assert len(REVISIONS) >= 4


@pytest.mark.parametrize("revision", REVISIONS, ids=lambda path: path.stem)
def test_a_revision_imports_no_queuekit_code(revision: Path) -> None:
    assert disallowed(revision, REVISION_MAY_IMPORT) == []


def test_the_environment_uses_only_its_public_helpers() -> None:
    imports = queuekit_imports(ALEMBIC / "env.py")
    assert imports, "env.py should use queuekit.migrations' helpers"
    assert disallowed(ALEMBIC / "env.py", ENV_MAY_IMPORT) == []
    assert not any(name.startswith("_") for _, name in imports)


def test_the_check_sees_a_model_import(tmp_path: Path) -> None:
    script = tmp_path / "queuekit_9999_example.py"
    script.write_text(
        "from queuekit.models import UTCDateTime\nimport queuekit.types\nNAME = 'queuekit_jobs'\n"
    )
    assert disallowed(script, REVISION_MAY_IMPORT) == [
        ("queuekit.models", "UTCDateTime"),
        ("queuekit.types", "*"),
    ]
