"""Tasks (and a tiny entry point) for tests that run a worker in a separate process.

``python tests/worker_app.py URL [CONCURRENCY [PREFETCH]]`` runs a Worker on
the main thread until SIGTERM/SIGINT; ``queuekit worker --tasks
worker_app:TASKS`` (from this directory) runs the same tasks.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

import sqlalchemy as sa

from queuekit import JobContext, JobManager, Worker


def slow(payload: dict[str, Any], _ctx: JobContext) -> None:
    """Works for ``payload["seconds"]``, ignoring shutdown requests (it finishes in time)."""
    time.sleep(float(payload.get("seconds", 0.2)))


def hang(_payload: dict[str, Any], _ctx: JobContext) -> None:
    """Never finishes on its own: the process is killed under it."""
    threading.Event().wait()


TASKS = {"slow": slow, "hang": hang}


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    url = argv[0]
    concurrency = int(argv[1]) if len(argv) > 1 else 2
    prefetch = int(argv[2]) if len(argv) > 2 else 4
    engine = sa.create_engine(url)
    worker = Worker(
        JobManager(engine),
        TASKS,
        concurrency=concurrency,
        prefetch=prefetch,
        poll_interval="0.05 seconds",
        maintenance=False,
    )
    print(f"worker {worker.worker_id} ready", flush=True)
    worker.run()
    stats = worker.stats
    print(f"stopped: completed={stats.completed} claimed={stats.claimed}", flush=True)
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1:])
