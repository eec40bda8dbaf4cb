"""Tasks and a worker entry point for ``test_exactly_once_processes.py``.

``python tests/exactly_once_app.py URL MARKERS_DIR [NUMBER]`` runs a Worker (one task
slot, no maintenance, 5-second lock timeout) until killed. Both tasks insert
one ``app_receipts`` row per job and then wait ``QK_WINDOW`` seconds (0 when
unset) in their *window*, with a marker file ``MARKERS_DIR/<pid>`` present
meanwhile, so the test can SIGKILL the process right there:

- ``with_block`` inserts inside ``ctx.transaction()``: its window lies
  between the write and the commit that also completes the job;
- ``without_block`` commits the row in a transaction of its own and returns
  afterwards: its window lies between that commit and the job's completion.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from queuekit import JobContext, JobManager, Worker

app_metadata = sa.MetaData()
receipts = sa.Table(
    "app_receipts",
    app_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("n", sa.Integer, nullable=False),
)

#: Longest wait in the window, in seconds (the wait is random, from half of it).
WINDOW = float(os.environ.get("QK_WINDOW", "0"))
#: Where the marker files go (None: no markers).
MARKERS: Path | None = None


def window() -> None:
    """Wait in the window with this process's marker file present."""
    if WINDOW <= 0:
        return
    marker = MARKERS / str(os.getpid()) if MARKERS is not None else None
    if marker is not None:
        marker.touch()
    try:
        time.sleep(random.uniform(WINDOW / 2, WINDOW))
    finally:
        if marker is not None:
            marker.unlink(missing_ok=True)


def with_block(payload: dict[str, Any], ctx: JobContext) -> None:
    """The receipt and the job's completion commit together."""
    with ctx.transaction() as session:
        session.execute(receipts.insert().values(n=payload["n"]))
        session.flush()
        window()


def without_block(payload: dict[str, Any], ctx: JobContext) -> None:
    """The receipt commits on its own; the worker completes the job later."""
    with ctx.manager.engine.begin() as conn:
        conn.execute(receipts.insert().values(n=payload["n"]))
    window()


TASKS = {"with_block": with_block, "without_block": without_block}


def main(argv: list[str]) -> None:
    global MARKERS
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    url, MARKERS = argv[0], Path(argv[1])
    engine = sa.create_engine(url)
    worker = Worker(
        JobManager(engine),
        TASKS,
        concurrency=1,
        prefetch=0,
        poll_interval="0.05 seconds",
        maintenance=False,
        lock_timeout="5 seconds",
        job_timeout=None,
    )
    print(f"worker {worker.worker_id} ready", flush=True)
    worker.run()


if __name__ == "__main__":
    main(sys.argv[1:])
