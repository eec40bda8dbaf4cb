"""The four sides of the peers benchmark, each driven through its own public API.

Every side does the same things on its own fresh PostgreSQL database:
enqueue one job per transaction, enqueue a bulk of jobs in one call, drain
a backlog with one worker, and run an idle worker that picks up jobs one
at a time. Every job carries its number; the worker records each run in a
:class:`Tally`, so the benchmark can count jobs lost, run twice or left
behind.

- ``raw SQL``: a two-column table (``id``, ``payload``) through bare
  psycopg: ``INSERT`` + ``COMMIT`` per job, ``COPY`` in bulk,
  ``DELETE ... RETURNING`` of 100 rows at a time + ``COMMIT``, woken by a statement
  trigger's ``NOTIFY`` (a benchmark-made table; queuekit itself uses no
  triggers).
- ``queuekit``: ``JobManager.add_job``/``add_jobs`` and a
  :class:`~queuekit.worker.Worker` running plain functions, no payload
  schema registered (the peers validate nothing either).
- ``PgQueuer``: ``SyncQueries.enqueue`` (single and list form) over an
  autocommit psycopg connection and a ``QueueManager`` on asyncpg running
  an ``async def`` entrypoint.
- ``Procrastinate``: ``task.defer``/``task.batch_defer`` through a
  ``SyncPsycopgConnector`` app and ``run_worker_async`` of an
  ``async def`` task.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import sqlalchemy as sa

TASK = "bench_noop"
#: Jobs one raw drain transaction takes, and the batch the peers' workers fetch.
BATCH = 100
#: Task slots (queuekit threads, peers' concurrent coroutines).
CONCURRENCY = 20
DRAIN_LIMIT = 600.0


def conninfo(url: str) -> str:
    """A libpq connection string for a SQLAlchemy URL."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Tally:
    """How often each job number ran, and when it first started."""

    def __init__(self) -> None:
        self.counts: collections.Counter[int] = collections.Counter()
        self.started: dict[int, float] = {}
        self._changed = threading.Condition()

    def record(self, number: int) -> None:
        """Job ``number`` runs now."""
        moment = time.perf_counter()
        with self._changed:
            self.counts[number] += 1
            self.started.setdefault(number, moment)
            self._changed.notify_all()

    def wait_started(self, number: int, timeout: float) -> float:
        """When job ``number`` started; waits up to ``timeout`` seconds."""
        with self._changed:
            if not self._changed.wait_for(lambda: number in self.started, timeout):
                raise RuntimeError(f"job {number} was not picked up within {timeout} s")
            return self.started[number]

    def wait_total(self, total: int, timeout: float) -> None:
        """Wait until ``total`` distinct jobs ran (or give up after ``timeout``)."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.counts) >= total, timeout)

    def problems(self, numbers: Iterable[int]) -> tuple[int, int]:
        """(lost, run twice) among ``numbers``."""
        with self._changed:
            lost = sum(1 for n in numbers if self.counts[n] == 0)
            twice = sum(1 for n in numbers if self.counts[n] > 1)
        return lost, twice


class LoopThread:
    """An asyncio event loop on a thread of its own, running one coroutine."""

    def __init__(self, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.loop = asyncio.new_event_loop()
        self.error: BaseException | None = None
        self._main = main
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as error:  # reported by join()
            self.error = error
        finally:
            self.loop.close()

    def call(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the loop's thread."""
        self.loop.call_soon_threadsafe(callback)

    def join(self, timeout: float) -> None:
        """Wait for the coroutine to end; re-raise what it raised."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"worker did not stop within {timeout} s")
        if self.error is not None and not isinstance(self.error, asyncio.CancelledError):
            raise self.error


class Side:
    """One system under test, opened on its own database."""

    name = ""

    def __init__(self, url: str) -> None:
        self.url = url
        self.tally = Tally()

    def enqueue_one(self, number: int) -> None:
        """Enqueue job ``number`` in its own transaction."""
        raise NotImplementedError

    def enqueue_bulk(self, numbers: range) -> None:
        """Enqueue jobs ``numbers`` in one call."""
        raise NotImplementedError

    def drain(self, total: int) -> None:
        """Run one worker until the queue is empty (``total`` jobs were queued)."""
        raise NotImplementedError

    def start_idle(self) -> None:
        """Start a worker that waits for jobs."""
        raise NotImplementedError

    def stop_idle(self) -> None:
        """Stop the idle worker."""
        raise NotImplementedError

    def remaining(self) -> int:
        """Jobs still waiting (or unfinished) in the side's tables."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""


# -- raw SQL -------------------------------------------------------------------------------

RAW_CHANNEL = "bench_raw_jobs"
RAW_SCHEMA = f"""
CREATE TABLE raw_jobs (id bigserial PRIMARY KEY, payload jsonb NOT NULL);
CREATE FUNCTION raw_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN PERFORM pg_notify('{RAW_CHANNEL}', ''); RETURN NULL; END $$;
CREATE TRIGGER raw_jobs_inserted AFTER INSERT ON raw_jobs
  FOR EACH STATEMENT EXECUTE FUNCTION raw_jobs_notify();
"""


class RawSide(Side):
    """The floor: the fewest statements a PostgreSQL job queue can run."""

    name = "raw SQL"

    def __init__(self, url: str) -> None:
        import psycopg

        super().__init__(url)
        self.connection = psycopg.connect(conninfo(url))
        self.connection.execute(RAW_SCHEMA)
        self.connection.commit()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def enqueue_one(self, number: int) -> None:
        from psycopg.types.json import Jsonb

        document = Jsonb({"n": number})
        self.connection.execute("INSERT INTO raw_jobs (payload) VALUES (%s)", (document,))
        self.connection.commit()

    def enqueue_bulk(self, numbers: range) -> None:
        from psycopg.types.json import Jsonb

        with (
            self.connection.cursor() as cursor,
            cursor.copy("COPY raw_jobs (payload) FROM STDIN") as copy,
        ):
            for n in numbers:
                copy.write_row((Jsonb({"n": n}),))
        self.connection.commit()

    def _take(self, connection: Any, limit: int) -> int:
        # A transaction committed explicitly, as the enqueue's (psycopg's default).
        rows = connection.execute(
            "DELETE FROM raw_jobs WHERE id IN (SELECT id FROM raw_jobs ORDER BY id"
            " LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING payload",
            (limit,),
        ).fetchall()
        connection.commit()
        for (payload,) in rows:
            self.tally.record(payload["n"])
        return len(rows)

    def drain(self, total: int) -> None:
        import psycopg

        with psycopg.connect(conninfo(self.url)) as worker:
            while self._take(worker, BATCH):
                pass

    def start_idle(self) -> None:
        import psycopg

        ready = threading.Event()

        def listen() -> None:
            listener = psycopg.connect(conninfo(self.url), autocommit=True)
            worker = psycopg.connect(conninfo(self.url))
            listener.execute(f"LISTEN {RAW_CHANNEL}")
            ready.set()
            while not self._stop.is_set():
                for _ in listener.notifies(timeout=0.2, stop_after=1):
                    while self._take(worker, BATCH):
                        pass
            listener.close()
            worker.close()

        self._stop.clear()
        self._thread = threading.Thread(target=listen, daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop_idle(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def remaining(self) -> int:
        row = self.connection.execute("SELECT count(*) FROM raw_jobs").fetchone()
        self.connection.commit()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.connection.close()


# -- queuekit ------------------------------------------------------------------------------


class QueuekitSide(Side):
    """queuekit through ``JobManager`` and ``Worker``."""

    name = "queuekit"

    def __init__(self, url: str) -> None:
        from queuekit import JobManager, migrations

        super().__init__(url)
        self.engine = sa.create_engine(url)
        migrations.upgrade(self.engine)
        self.manager = JobManager(self.engine)
        self._idle: Any = None

    def _worker(self, worker_id: str) -> Any:
        from queuekit.worker import Worker

        tally = self.tally

        def noop(payload: dict[str, Any], ctx: Any) -> None:
            tally.record(payload["n"])

        return Worker(
            self.manager,
            {TASK: noop},
            concurrency=CONCURRENCY,
            worker_id=worker_id,
            poll_interval="2 seconds",
            maintenance=False,
        )

    def enqueue_one(self, number: int) -> None:
        self.manager.add_job(TASK, {"n": number})

    def enqueue_bulk(self, numbers: range) -> None:
        from queuekit import JobSpec

        self.manager.add_jobs([JobSpec(TASK, {"n": n}) for n in numbers])

    def drain(self, total: int) -> None:
        self._worker("bench-drain").drain()

    def start_idle(self) -> None:
        self._idle = self._worker("bench-idle")
        self._idle.start()
        time.sleep(0.5)  # the listener is up and the first (empty) claim is done

    def stop_idle(self) -> None:
        self._idle.stop()

    def remaining(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM queuekit_jobs")).scalar_one())

    def close(self) -> None:
        self.engine.dispose()


# -- PgQueuer ------------------------------------------------------------------------------


class PgQueuerSide(Side):
    """PgQueuer: ``SyncQueries`` to enqueue, a ``QueueManager`` to run jobs."""

    name = "PgQueuer"

    def __init__(self, url: str) -> None:
        import psycopg
        from pgqueuer.adapters.drivers.psycopg import SyncPsycopgDriver
        from pgqueuer.adapters.persistence.queries import SyncQueries

        super().__init__(url)
        asyncio.run(self._install())
        self.connection = psycopg.connect(conninfo(url), autocommit=True)
        self.queries = SyncQueries(SyncPsycopgDriver(self.connection))
        self._idle: LoopThread | None = None
        self._manager: Any = None

    async def _install(self) -> None:
        import psycopg
        from pgqueuer import PsycopgDriver, Queries

        async with await psycopg.AsyncConnection.connect(
            conninfo(self.url), autocommit=True
        ) as connection:
            await Queries(PsycopgDriver(connection)).install()

    def enqueue_one(self, number: int) -> None:
        self.queries.enqueue(TASK, json.dumps({"n": number}).encode())

    def enqueue_bulk(self, numbers: range) -> None:
        self.queries.enqueue(
            [TASK] * len(numbers),
            [json.dumps({"n": n}).encode() for n in numbers],
            [0] * len(numbers),
        )

    async def _run(self, mode: Any, started: threading.Event | None = None) -> None:
        import asyncpg
        from pgqueuer import AsyncpgDriver, Queries, QueueManager
        from pgqueuer.models import Job

        tally = self.tally
        # asyncpg: the driver PgQueuer's documentation leads with for workers.
        connection = await asyncpg.connect(conninfo(self.url))
        try:
            manager = QueueManager(Queries(AsyncpgDriver(connection)))
            self._manager = manager

            @manager.entrypoint(TASK)
            async def noop(job: Job) -> None:
                assert job.payload is not None
                tally.record(json.loads(job.payload)["n"])

            if started is not None:
                asyncio.get_running_loop().call_later(0.5, started.set)
            await manager.run(batch_size=BATCH, mode=mode)
        finally:
            await connection.close()

    def drain(self, total: int) -> None:
        from pgqueuer.types import QueueExecutionMode

        runner = LoopThread(lambda: self._run(QueueExecutionMode.drain))
        runner.join(DRAIN_LIMIT)

    def start_idle(self) -> None:
        from pgqueuer.types import QueueExecutionMode

        started = threading.Event()
        self._idle = LoopThread(lambda: self._run(QueueExecutionMode.continuous, started))
        started.wait(10)

    def stop_idle(self) -> None:
        assert self._idle is not None
        manager = self._manager
        self._idle.call(manager.shutdown.set)
        self._idle.join(30)

    def remaining(self) -> int:
        row = self.connection.execute("SELECT count(*) FROM pgqueuer").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.connection.close()


# -- Procrastinate -------------------------------------------------------------------------


class ProcrastinateSide(Side):
    """Procrastinate: a sync-connector app to defer, an async one to run the worker."""

    name = "Procrastinate"

    def __init__(self, url: str) -> None:
        import procrastinate

        super().__init__(url)
        self.app = procrastinate.App(
            connector=procrastinate.SyncPsycopgConnector(conninfo=conninfo(url))
        )
        self.app.open()
        self.app.schema_manager.apply_schema()
        self.task = self._register(self.app)
        self._idle: LoopThread | None = None
        self._worker_task: asyncio.Task[None] | None = None

    def _register(self, app: Any) -> Any:
        tally = self.tally

        async def noop(n: int) -> None:
            tally.record(n)

        return app.task(name=TASK)(noop)

    def enqueue_one(self, number: int) -> None:
        self.task.defer(n=number)

    def enqueue_bulk(self, numbers: range) -> None:
        self.task.batch_defer(*({"n": n} for n in numbers))

    async def _run(self, wait: bool, started: threading.Event | None = None) -> None:
        import procrastinate

        connector = procrastinate.PsycopgConnector(conninfo=conninfo(self.url))
        app = procrastinate.App(connector=connector)
        self._register(app)
        async with app.open_async():
            worker = asyncio.ensure_future(
                app.run_worker_async(
                    wait=wait,
                    concurrency=CONCURRENCY,
                    install_signal_handlers=False,
                    fetch_job_polling_interval=2.0,
                )
            )
            self._worker_task = worker
            if started is not None:
                asyncio.get_running_loop().call_later(0.5, started.set)
            with contextlib.suppress(asyncio.CancelledError):  # how stop_idle stops it
                await worker

    def drain(self, total: int) -> None:
        runner = LoopThread(lambda: self._run(wait=False))
        runner.join(DRAIN_LIMIT)

    def start_idle(self) -> None:
        started = threading.Event()
        self._idle = LoopThread(lambda: self._run(wait=True, started=started))
        started.wait(10)

    def stop_idle(self) -> None:
        assert self._idle is not None and self._worker_task is not None
        self._idle.call(self._worker_task.cancel)
        self._idle.join(30)

    def remaining(self) -> int:
        rows = self.app.connector.execute_query_all(
            query="SELECT count(*) AS n FROM procrastinate_jobs WHERE status <> 'succeeded'"
        )
        return int(rows[0]["n"])

    def close(self) -> None:
        self.app.close()


SIDES: tuple[type[Side], ...] = (RawSide, QueuekitSide, PgQueuerSide, ProcrastinateSide)
