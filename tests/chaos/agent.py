"""A chaos host: runs inside its namespace (own hostname and PID space) and forks workers.

``python -m tests.chaos.agent CONFIG_JSON``. As PID 1 of its namespace it
forwards SIGTERM to its workers, waits for them, and exits; SIGKILL of it
takes the whole "host" down at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import signal
import sys
from typing import Any


def work(config: dict[str, Any]) -> None:
    """One worker process."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from queuekit import JobManager, Maintenance, RetryPolicy, Worker
    from queuekit.connections import create_engine
    from tests.chaos import workload

    logging.basicConfig(
        level=logging.WARNING,
        filename=os.path.join(config["dir"], f"worker-h{config['host']}-{os.getpid()}.log"),
        format="%(asctime)s %(threadName)s %(levelname)s %(name)s: %(message)s",
    )
    workload.open_ledger(workload.ledger_path(config["dir"], config["host"]))
    engine = create_engine(config["url"], pooler=config["pooler"])
    manager = JobManager(engine, retry=RetryPolicy(base_delay=0.2, max_delay=1, jitter=0.1))
    lock_timeout = config["lock_timeout"]
    worker = Worker(
        manager,
        workload.TASKS,
        concurrency=config["concurrency"],
        lock_timeout=lock_timeout,
        maintenance=Maintenance(manager, interval=1, lock_timeout=lock_timeout),
        crontabs=workload.CRON,
        poll_interval=0.5,
        job_timeout=30,
        shutdown_timeout=3,
        listen_url=config["listen_url"],
    )
    worker.on(
        "cron/fired",
        lambda e: workload.record(
            {"e": "cron", "j": str(e.data["job_id"]), "slot": e.data["slot"].isoformat()}
        ),
    )
    worker.on(
        "worker/error",
        lambda e: workload.record({"e": "fence"}) if e.data.get("cause") == "fence" else None,
    )
    workload.record({"e": "up", "w": worker.worker_id, "budget": worker.connection_budget})
    worker.run()


def main() -> None:
    config = json.loads(sys.argv[1])
    # Imported once here, so the forked workers start without importing again.
    import queuekit.connections  # noqa: F401
    import tests.chaos.workload  # noqa: F401

    context = multiprocessing.get_context("fork")
    children = [context.Process(target=work, args=(config,)) for _ in range(config["procs"])]
    for child in children:
        child.start()

    def stop(_signum: int, _frame: object) -> None:
        # A worker SIGKILLed earlier may be reaped already: signalling its pid
        # would raise here, skip the rest, and leave the agent's exit joining
        # workers that were never told to stop.
        for child in children:
            if child.pid is not None and child.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.join()


if __name__ == "__main__":
    main()
