"""Every default lives in queuekit.defaults; the API, the models and the docs agree with it."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from queuekit import AsyncJobManager, JobManager, JobSpec, Worker, defaults
from queuekit.maintenance import Maintenance
from queuekit.models import jobs

ROOT = Path(__file__).resolve().parents[2]


def default_of(function: object, parameter: str) -> object:
    return inspect.signature(function).parameters[parameter].default  # type: ignore[arg-type]


@pytest.mark.parametrize("api", [JobManager, AsyncJobManager])
def test_the_managers_read_the_defaults(api: Any) -> None:
    assert default_of(api.add_job, "max_attempts") == defaults.MAX_ATTEMPTS
    assert default_of(api.get_jobs, "history_retention") == defaults.HISTORY_RETENTION
    assert default_of(api.gc_task_identifiers, "keep") == defaults.TASK_IDENTIFIER_KEEP
    assert default_of(api.reset_locked_jobs, "lock_timeout") == defaults.RESET_LOCK_TIMEOUT


def test_the_worker_maintenance_spec_and_table_read_the_defaults() -> None:
    assert JobSpec("t").max_attempts == defaults.MAX_ATTEMPTS
    assert default_of(Worker, "lock_timeout") == defaults.LOCK_TIMEOUT
    assert default_of(Worker, "history_retention") == defaults.HISTORY_RETENTION
    assert default_of(Maintenance, "lock_timeout") == defaults.LOCK_TIMEOUT
    assert default_of(Maintenance, "task_identifier_retention") == defaults.TASK_IDENTIFIER_KEEP
    server_default = jobs.c.max_attempts.server_default
    assert str(server_default.arg) == str(defaults.MAX_ATTEMPTS)  # type: ignore[union-attr]


def docs_text(name: str) -> str:
    return re.sub(r"\s+", " ", (ROOT / name).read_text())


@pytest.mark.parametrize(
    ("document", "phrase"),
    [
        ("docs/concepts.md", f"| `max_attempts` | {defaults.MAX_ATTEMPTS} |"),
        ("docs/getting-started.md", f"`max_attempts` ({defaults.MAX_ATTEMPTS} by default)"),
        ("docs/concepts.md", f"({defaults.HISTORY_RETENTION} by default)"),
        ("docs/getting-started.md", f"({defaults.HISTORY_RETENTION} by default)"),
        ("docs/scaling.md", f"{defaults.LOCK_TIMEOUT} by default"),
        ("README.md", f"(default {defaults.LOCK_TIMEOUT};"),
    ],
)
def test_the_docs_state_the_defaults(document: str, phrase: str) -> None:
    assert phrase in docs_text(document)
