"""Code blocks of the Markdown documentation, for the tests that run them.

A fenced block may be preceded (directly, blank lines allowed) by HTML
comments that readers never see:

- ``<!-- example: NAME -->`` names the block, so that a test can run that
  exact code again on another database and check what it does;
- ``<!-- docs-test: skip REASON -->`` keeps the block out of the run (it is
  still compiled); the reason says why, e.g. it blocks until interrupted;
- ``<!-- docs-test: postgresql -->`` marks a block that needs a PostgreSQL
  server: it is left out of the SQLite run; Python blocks run instead, in
  order, with ``DATABASE_URL`` naming a fresh PostgreSQL database where
  queuekit's tables are migrated in the default schema, and SQL
  blocks run on a migrated PostgreSQL database;
- ``<!-- docs-test: run -->`` marks a shell block to run (shell blocks do
  not run otherwise: most say ``pip install``); the run blocks of a file run
  in order, with ``bash -e``, in one empty directory;
- ``<!-- docs-test: excerpt PATH -->`` marks an excerpt of a file of the
  repository that a test runs (an ``env.py``, an ``alembic.ini``): the
  block's lines, ``...`` and blank lines aside, must appear in that file in
  the same order.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
_MARKER = re.compile(r"<!--\s*(example|docs-test):\s*(.*?)\s*-->")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int
    language: str
    code: str
    name: str | None = None
    skip: str | None = None
    postgresql: bool = False
    excerpt: str | None = None
    run: bool = False

    @property
    def runs_on_sqlite(self) -> bool:
        """Whether the SQLite run of its file executes it."""
        return self.skip is None and not self.postgresql and self.excerpt is None

    @property
    def where(self) -> str:
        """``file:line`` of the block's first code line, for tracebacks and messages."""
        return f"{self.path.name}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``, in order, with the markers before it."""
    found: list[Block] = []
    lines = path.read_text().splitlines()
    markers: dict[str, str] = {}
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        match = _MARKER.fullmatch(stripped)
        if match:
            kind, value = match.groups()
            if kind == "example":
                markers["name"] = value
            elif value in ("postgresql", "run"):
                markers[value] = value
            elif value.startswith("excerpt "):
                markers["excerpt"] = value.removeprefix("excerpt ").strip()
            elif value.startswith("skip"):
                markers["skip"] = value.removeprefix("skip").strip() or "(no reason given)"
            else:
                raise ValueError(f"{path.name}:{index + 1}: unknown marker {stripped!r}")
        elif stripped.startswith("```") and len(stripped) > 3:
            language = stripped[3:].strip()
            start = index + 1
            end = start
            while lines[end].strip() != "```":
                end += 1
            found.append(
                Block(
                    path=path,
                    line=start + 1,
                    language=language,
                    code="\n".join(lines[start:end]) + "\n",
                    name=markers.get("name"),
                    skip=markers.get("skip"),
                    postgresql="postgresql" in markers,
                    excerpt=markers.get("excerpt"),
                    run="run" in markers,
                )
            )
            markers = {}
            index = end
        elif stripped:
            markers = {}
        index += 1
    return found


def python_blocks(path: Path) -> list[Block]:
    """The ``python`` blocks of ``path``."""
    return [block for block in blocks(path) if block.language == "python"]


def named_block(path: Path, name: str) -> Block:
    """The block marked ``<!-- example: name -->`` in ``path``."""
    (block,) = [block for block in blocks(path) if block.name == name]
    return block


def doc_files() -> list[Path]:
    """Every Markdown file of ``docs/``."""
    return sorted(DOCS.glob("*.md"))


@contextmanager
def doc_module(name: str) -> Iterator[types.ModuleType]:
    """A module registered in ``sys.modules`` to run blocks in, like a reader's script.

    Declarative models resolve their ``Mapped[...]`` annotations through the
    module they were defined in, so the blocks need a real module.
    """
    module = types.ModuleType(name)
    sys.modules[name] = module
    try:
        yield module
    finally:
        del sys.modules[name]


def run(block: Block, module: types.ModuleType) -> None:
    """Execute one block in ``module``; tracebacks name the Markdown file and line."""
    code = compile("\n" * (block.line - 1) + block.code, str(block.path), "exec")
    exec(code, module.__dict__)
