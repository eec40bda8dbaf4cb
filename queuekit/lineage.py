"""Where a host's new revisions may go when queuekit's revisions are merged into its history.

With queuekit's ``versions`` directory in a host's ``version_locations``,
Alembic bases a new revision on "the head" and writes it next to that head's
file. While the host has no revision of its own, that head is queuekit's: a
plain ``alembic revision --autogenerate`` would quietly write the host's
revision into the installed queuekit package, continuing queuekit's branch.
:func:`refuse_misplaced_revisions` catches that before anything is written,
with the commands that do it right.

The include helpers (:func:`queuekit.migrations.include_name` and
:func:`~queuekit.migrations.include_object`) run the check during every
autogenerate, so a host that wired them in is protected without more code;
:func:`check_new_revisions` is the same check as a
``process_revision_directives`` hook, which also covers revisions made
without ``--autogenerate`` when ``revision_environment = true``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["check_new_revisions", "refuse_misplaced_revisions"]

#: Revision contexts already checked, so the include helpers check each one once.
_checked: set[int] = set()


def _active_revision_context() -> Any:
    """The ``alembic revision`` run in progress, or None (not running, or another command)."""
    from alembic import context

    environment = getattr(context, "_proxy", None)
    if environment is None:
        return None
    return getattr(environment, "context_opts", {}).get("revision_context")


def check_active_revision() -> None:
    """Refuse the ``alembic revision`` in progress if it targets queuekit's branch.

    Called by the include helpers; does nothing outside ``alembic revision``.
    """
    revision_context = _active_revision_context()
    if revision_context is None or id(revision_context) in _checked:
        return
    _checked.add(id(revision_context))
    refuse_misplaced_revisions(
        revision_context.script_directory, revision_context.generated_revisions
    )


def check_new_revisions(context: Any, revision: Any, directives: Sequence[Any]) -> None:
    """A ``process_revision_directives`` hook: :func:`refuse_misplaced_revisions`."""
    refuse_misplaced_revisions(context.script, directives)


def refuse_misplaced_revisions(script_directory: Any, directives: Iterable[Any]) -> None:
    """Raise Alembic's ``CommandError`` for a new revision that would extend queuekit's branch.

    ``directives`` are the ``MigrationScript`` objects Alembic is about to
    write. A revision is refused when it would be based on one of queuekit's
    revisions, or be written into the directory holding them.
    """
    from alembic.util import CommandError

    from queuekit import migrations

    ours = Path(migrations.versions_location()).resolve()
    known = migrations._known_revisions()
    for directive in directives:
        heads = _resolved_heads(script_directory, directive.head or "head")
        parents = sorted(head.revision for head in heads if head.revision in known)
        if directive.version_path is not None:
            target = Path(directive.version_path).resolve()
        elif heads:
            target = Path(heads[0].path).resolve().parent
        else:
            target = None
        if parents or target == ours:
            based = f" on {', '.join(parents)}" if parents else ""
            raise CommandError(
                f"refusing to create a revision{based} in queuekit's branch (it would be "
                f"written into {ours}, inside the installed queuekit package, and lost on "
                "its next upgrade). Your revisions belong on your own branch: create the "
                "first one with `alembic revision --autogenerate --head base --branch-label "
                "NAME --version-path DIR -m MESSAGE` (DIR: your versions directory), later "
                "ones with `--head NAME@head`; to use queuekit's tables, add "
                "`--depends-on queuekit_0001`"
            )


def _resolved_heads(script_directory: Any, head: str) -> list[Any]:
    """The revisions ``head`` names (none for ``base``); empty when Alembic cannot tell.

    An ambiguous ``head`` (several heads) is left for Alembic to refuse itself.
    """
    try:
        revisions = script_directory.revision_map.get_revisions(head)
    except Exception:  # whatever Alembic cannot resolve, it reports itself next
        return []
    return [revision for revision in revisions if revision is not None]
