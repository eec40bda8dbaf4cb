"""AsyncJobManager restates JobManager's signatures: they must agree to the letter.

Each coroutine passes its arguments on to the synchronous method, so a
default or a keyword that differs would make the two APIs behave differently
for the same call. Compared: parameter names, kinds, defaults and annotations,
and return annotations (``SessionLike`` reads ``AsyncSessionLike`` on the
async side; a coroutine's return annotation is what awaiting it gives).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Set
from typing import Any

import pytest

from queuekit import AsyncJobManager, JobManager
from queuekit.async_manager import AsyncSessionLike
from queuekit.durations import Duration
from queuekit.support import Support

#: JobManager methods the (synchronous) worker alone uses: no async twin.
SYNC_ONLY = {
    "check_database",
    "prepare_enqueue",
    "register_worker",
    "touch_worker",
    "remove_worker",
    "remove_dead_workers",
    # queuekit's own worker, scheduler, CLI and dashboard support (queuekit.support)
    *(name for name in vars(Support) if not name.startswith("_")),
}
#: Constructor parameters that differ on purpose: the engine's type, and the
#: schema check the async manager runs on first use instead of in ``__init__``.
INIT_DIFFERENCES = {"bind", "check_schema"}


def public_methods() -> list[str]:
    return sorted(
        name
        for name, member in inspect.getmembers(JobManager, inspect.isfunction)
        if not name.startswith("_") and name not in SYNC_ONLY
    )


def shape(function: Callable[..., Any], skip: Set[str] = frozenset()) -> list[tuple[Any, ...]]:
    """Each parameter as (name, kind, default, annotation), then the return annotation."""
    signature = inspect.signature(function)
    params: list[tuple[Any, ...]] = [
        (p.name, p.kind, p.default, _sync_spelling(p.annotation))
        for p in signature.parameters.values()
        if p.name not in skip
    ]
    return [*params, ("return", _sync_spelling(signature.return_annotation))]


def _sync_spelling(annotation: object) -> object:
    return (
        annotation.replace("AsyncSessionLike", "SessionLike")
        if isinstance(annotation, str)
        else annotation
    )


def test_every_public_method_is_compared() -> None:
    assert len(public_methods()) >= 30


@pytest.mark.parametrize("name", public_methods())
def test_the_async_twin_has_the_same_signature(name: str) -> None:
    twin = getattr(AsyncJobManager, name, None)
    assert twin is not None and inspect.iscoroutinefunction(twin), f"{name} has no async twin"
    assert shape(twin) == shape(getattr(JobManager, name))


def test_the_constructors_agree_but_for_the_engine_and_the_schema_check() -> None:
    assert shape(AsyncJobManager.__init__, INIT_DIFFERENCES) == shape(
        JobManager.__init__, INIT_DIFFERENCES
    )


def test_the_comparison_sees_a_changed_default() -> None:
    async def same(
        self: Any, *, keep: Duration = "7 days", session: AsyncSessionLike = None
    ) -> int:
        return 0

    async def drifted(
        self: Any, *, keep: Duration = "8 days", session: AsyncSessionLike = None
    ) -> int:
        return 0

    method = JobManager.gc_task_identifiers
    assert shape(same, {"self"}) == shape(method, {"self"})
    assert shape(drifted, {"self"}) != shape(method, {"self"})
