"""Enqueueing: bulk inserts and job-key modes."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)

from queuekit.dialects.base import JsonText
from queuekit.errors import TransientDatabaseError
from queuekit.models import (
    UTCDateTime,
    job_history,
    job_status,
    jobs,
)
from queuekit.repository.base import (
    CHUNK,
    COPIED_COLUMNS,
    COPY_THRESHOLD,
    KEY_ROUNDS,
    chunks,
    sized_chunks,
)
from queuekit.repository.catalog import Catalog
from queuekit.rows import (
    job_from_mapping,
    job_from_row,
)
from queuekit.types import (
    Job,
)
from queuekit.validation import NewJob

#: Empty flags as JSON text, for bulk loads.
NO_FLAGS = JsonText("[]")


class Enqueue(Catalog):
    """Statements that add jobs."""

    def add_jobs(self, conn: Connection, new_jobs: Sequence[NewJob]) -> list[Job]:
        """Insert jobs in bulk, applying job-key modes; results in input order."""
        self.ensure_queues(conn, (j.queue_name for j in new_jobs if j.queue_name))
        self.touch_tasks(conn, (j.task_identifier for j in new_jobs))
        results: list[Job | None] = [None] * len(new_jobs)
        plain = [(i, j) for i, j in enumerate(new_jobs) if j.job_key is None]
        if plain:
            rows = [self._new_row(j) for _, j in plain]
            inserted = self._insert_plain(
                conn,
                rows,
                [j.payload_bytes for _, j in plain],
                [j.payload_text for _, j in plain],
            )
            for (index, _), job in zip(plain, inserted, strict=True):
                results[index] = job
        groups: dict[str, list[tuple[int, NewJob]]] = {}
        for index, new_job in enumerate(new_jobs):
            if new_job.job_key is not None:
                groups.setdefault(new_job.job_key, []).append((index, new_job))
        if groups:
            self._add_keyed(conn, groups, results)
        return [job for job in results if job is not None]

    def any_job_saved(self, conn: Connection, ids: Sequence[uuid.UUID]) -> bool:
        """Whether any of these job ids was stored: still queued, or with a history row.

        Tells whether an enqueue whose COMMIT was lost landed: its jobs may
        have been claimed and completed (deleted) since, but not without
        leaving history.
        """
        for part in chunks(list(ids)):
            queued = exists().where(jobs.c.id.in_(list(part)))
            ran = exists().where(job_history.c.job_id.in_(list(part)))
            if self.run(conn, select(or_(queued, ran))).scalar():
                return True
        return False

    def _new_row(self, new_job: NewJob, *, run_at: datetime | None = None) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": new_job.id,
            "task_identifier": new_job.task_identifier,
            "payload": new_job.payload,
            "priority": new_job.priority,
            "queue_name": new_job.queue_name,
            "run_at_value": run_at or new_job.run_at,
            "attempts": 0,
            "max_attempts": new_job.max_attempts,
            "job_key": new_job.job_key,
            "job_key_mode": new_job.job_key_mode,
            "flags": list(new_job.flags),
            "rate_limit_key": new_job.rate_limit_key,
        }
        # Only traced enqueues name the column (every job of a call is traced or
        # none is), so untraced inserts keep their statement and leave it NULL.
        if new_job.trace_context is not None:
            row["trace_context"] = new_job.trace_context
        return row

    def _computed_values(self) -> dict[str, ColumnElement[Any]]:
        """Columns of a new job computed in SQL: the database clock, and the wake-up."""
        now = self.dialect.now()
        run_at = func.coalesce(bindparam("run_at_value", type_=UTCDateTime()), now)
        return {
            "run_at": run_at,
            "created_at": now,
            "updated_at": now,
            **self.dialect.wake_up_values(run_at),
        }

    @functools.cached_property
    def _insert_statement(self) -> Any:
        # Built once: constructing and cache-keying it dominated a single enqueue.
        return jobs.insert().values(self._computed_values())

    @functools.cached_property
    def _insert_returning_statement(self) -> Any:
        # Only what the database computed: the rest of each job is the row we
        # sent. Decoding every column back (the payload's JSON among them) took
        # a fifth of a single enqueue's client time.
        return self._insert_statement.returning(
            jobs.c.id, jobs.c.run_at, jobs.c.created_at, sort_by_parameter_order=True
        )

    def _insert_plain(
        self,
        conn: Connection,
        rows: list[dict[str, Any]],
        sizes: Sequence[int],
        texts: Sequence[str | None],
    ) -> list[Job]:
        if len(rows) >= COPY_THRESHOLD and self.dialect.bulk_loads:
            return self._copy_plain(conn, rows, texts)
        if conn.dialect.insert_executemany_returning_sort_by_parameter_order:
            computed: dict[uuid.UUID, Any] = {}
            returning = self._insert_returning_statement
            for part in sized_chunks(rows, sizes):
                computed.update((row.id, row) for row in self.run(conn, returning, list(part)))
            return [
                self._job_from_new_row(
                    r, computed[r["id"]].created_at, run_at=computed[r["id"]].run_at
                )
                for r in rows
            ]
        for part in sized_chunks(rows, sizes):
            self.run(conn, self._insert_statement, list(part))
        by_id = self._select_jobs(conn, [r["id"] for r in rows])
        return [job_from_row(by_id[r["id"]]) for r in rows]

    def _copy_plain(
        self, conn: Connection, rows: list[dict[str, Any]], texts: Sequence[str | None]
    ) -> list[Job]:
        """Bulk-load keyless jobs with the dialect's fastest path, timed by one clock read.

        Payloads go as the JSON text validation already wrote, flags as text
        too when empty (the usual case), so no document is encoded twice.
        """
        now = self.now(conn)
        columns = [*COPIED_COLUMNS]
        traced = "trace_context" in rows[0]
        if traced:
            columns.append("trace_context")
        values = [
            (
                row["id"],
                row["task_identifier"],
                row["payload"] if text is None else JsonText(text),
                row["priority"],
                row["queue_name"],
                row["run_at_value"] or now,
                row["max_attempts"],
                row["flags"] or NO_FLAGS,
                row["rate_limit_key"],
                now,
                now,
                *((row["trace_context"],) if traced else ()),
            )
            for row, text in zip(rows, texts, strict=True)
        ]
        self.dialect.copy_rows(conn, jobs, columns, values, self.schema)
        return [self._job_from_new_row(row, now) for row in rows]

    def _add_keyed(
        self,
        conn: Connection,
        groups: dict[str, list[tuple[int, NewJob]]],
        results: list[Job | None],
    ) -> None:
        """Apply each key's requests in order against the row holding the key.

        Concurrent enqueues of the same key are resolved by inserting with
        "skip on conflict": a key someone else inserted meanwhile is simply
        processed again against that row, so no unique violation escapes.
        """
        pending = sorted(groups)
        for round_number in range(KEY_ROUNDS):
            if not pending:
                return
            pending = self._apply_keys(
                conn, {k: groups[k] for k in pending}, results, retry=round_number > 0
            )
        raise TransientDatabaseError(
            f"concurrent enqueues kept changing the rows of job keys {', '.join(pending[:3])} "
            f"for {KEY_ROUNDS} rounds; nothing was enqueued: retry the call"
        )

    def _apply_keys(
        self,
        conn: Connection,
        groups: dict[str, list[tuple[int, NewJob]]],
        results: list[Job | None],
        *,
        retry: bool = False,
    ) -> list[str]:
        keys = list(groups)
        existing: dict[str, Any] = {}
        for part in chunks(keys):
            if retry:
                # The insert that conflicted row-locked each key's holder, so a
                # locking read by key finds it without waiting (a plain read may
                # still show an older holder under REPEATABLE READ).
                locked = (
                    select(jobs)
                    .where(jobs.c.job_key.in_(list(part)))
                    .order_by(jobs.c.id)
                    .with_for_update()
                )
                existing.update((row.job_key, row) for row in self.run(conn, locked))
                continue
            # Find the key holders without locking, then lock them by primary key.
            # Locking through the unique job_key index instead makes InnoDB
            # deadlock when concurrent replaces delete and re-insert one key. A
            # holder that changed meanwhile counts as absent: its key's insert
            # then conflicts, and the next round looks again.
            found = select(jobs.c.id).where(jobs.c.job_key.in_(list(part)))
            ids = sorted(self.run(conn, found).scalars())
            if not ids:
                continue
            locked = select(jobs).where(jobs.c.id.in_(ids)).order_by(jobs.c.id).with_for_update()
            existing.update(
                (row.job_key, row)
                for row in self.run(conn, locked)
                if row.job_key is not None and row.job_key in groups
            )

        detach_exhausted: list[uuid.UUID] = []
        detach_running: list[uuid.UUID] = []
        deletes: list[uuid.UUID] = []
        preserved: dict[uuid.UUID, NewJob] = {}
        inserts: dict[str, dict[str, Any]] = {}
        produced: dict[int, uuid.UUID] = {}
        replaced_in_batch: dict[uuid.UUID, dict[str, Any]] = {}
        # Existing rows an earlier request of this batch returned, then replaced.
        vanished: dict[uuid.UUID, Job] = {}

        for key, requests in groups.items():
            row = existing.get(key)
            current: dict[str, Any] | None = None  # a row this batch will insert
            for index, new_job in requests:
                mode = new_job.job_key_mode
                if (
                    row is not None
                    and job_status(row.locked_at, row.attempts, row.max_attempts) == "exhausted"
                ):
                    detach_exhausted.append(row.id)  # exhausted counts as absent
                    row = None
                if row is None and current is None:
                    current = self._new_row(new_job)
                elif row is not None and row.locked_at is not None:
                    if mode == "unsafe_dedupe":
                        produced[index] = row.id
                        continue
                    detach_running.append(row.id)  # keeps running, never retried
                    row = None
                    current = self._new_row(new_job)
                elif mode == "unsafe_dedupe":
                    pass
                elif mode == "replace":
                    if row is not None:
                        deletes.append(row.id)
                        vanished[row.id] = self._as_preserved(row, preserved.pop(row.id, None))
                        row = None
                    elif current is not None:
                        replaced_in_batch[current["id"]] = current
                    current = self._new_row(new_job)
                elif row is not None:  # preserve_run_at on an available row
                    preserved[row.id] = new_job
                else:
                    assert current is not None
                    current.update(
                        {
                            k: v
                            for k, v in self._new_row(new_job).items()
                            if k not in ("id", "run_at_value", "job_key_mode")
                        }
                    )
                produced[index] = row.id if row is not None else current["id"]  # type: ignore[index]
            if current is not None and row is None:
                inserts[key] = current

        self._detach_keys(conn, detach_exhausted, running=False)
        self._detach_keys(conn, detach_running, running=True)
        for doomed in chunks(deletes):
            self.run(conn, delete(jobs).where(jobs.c.id.in_(list(doomed))))
        self._preserve_run_at(conn, preserved)

        inserted: set[Any] = set()
        keyed = list(inserts.values())
        sizes = [len(json.dumps(row["payload"])) for row in keyed]
        for batch in sized_chunks(keyed, sizes):
            inserted |= self._insert_skipping_key_conflicts(conn, batch)
        conflicted = {key for key, row in inserts.items() if row["id"] not in inserted}

        settled = {
            index: job_id
            for key, requests in groups.items()
            if key not in conflicted
            for index, _ in requests
            for job_id in (produced[index],)
        }
        # These rows are locked by this transaction already; a locking read sees
        # holders committed after a REPEATABLE READ snapshot was taken.
        rows_by_id = self._select_jobs(conn, sorted(set(settled.values())), locking=True)
        # Jobs replaced later in the same batch were never stored: built from
        # their rows, timed by one clock read.
        now = self.now(conn) if replaced_in_batch else None
        for index, job_id in settled.items():
            if job_id in rows_by_id:
                results[index] = job_from_row(rows_by_id[job_id])
            elif job_id in vanished:
                results[index] = vanished[job_id]
            else:
                assert now is not None
                results[index] = self._job_from_new_row(replaced_in_batch[job_id], now)
        return sorted(conflicted)

    def _insert_skipping_key_conflicts(
        self, conn: Connection, rows: Sequence[dict[str, Any]]
    ) -> set[uuid.UUID]:
        """Insert keyed rows, skipping keys that exist; return the ids actually inserted."""
        statement = self.dialect.insert_skipping_conflicts(jobs, "job_key", self._computed_values())
        if self.dialect.skip_insert_returns_ids:
            return set(self.run(conn, statement.returning(jobs.c.id), list(rows)).scalars())
        self.run(conn, statement, list(rows))
        return set(self._select_jobs(conn, [row["id"] for row in rows]))

    @staticmethod
    def _job_from_new_row(
        row: dict[str, Any], now: datetime, *, run_at: datetime | None = None
    ) -> Job:
        """The job a freshly inserted row describes, ``now`` being its insertion time.

        ``run_at`` is the stored one when the database returned it.
        """
        computed = {
            "run_at": run_at or row["run_at_value"] or now,
            "attempts": 0,
            "last_error": None,
            "created_at": now,
            "updated_at": now,
            "locked_at": None,
            "locked_by": None,
            "revision": 0,
        }
        return job_from_mapping({**row, **computed})

    @staticmethod
    def _as_preserved(row: Any, new_job: NewJob | None) -> Job:
        """An existing row as a ``preserve_run_at`` update of it (if any) leaves it."""
        job = job_from_row(row)
        if new_job is None:
            return job
        return replace(
            job,
            task_identifier=new_job.task_identifier,
            payload=new_job.payload,
            queue_name=new_job.queue_name,
            priority=new_job.priority,
            max_attempts=new_job.max_attempts,
            flags=new_job.flags,
            rate_limit_key=new_job.rate_limit_key,
            revision=job.revision + 1,
        )

    def _detach_keys(self, conn: Connection, ids: Sequence[uuid.UUID], *, running: bool) -> None:
        values: dict[str, Any] = {
            "job_key": None,
            "job_key_mode": None,
            "revision": jobs.c.revision + 1,
            "updated_at": self.dialect.now(),
        }
        if running:
            values["max_attempts"] = jobs.c.attempts  # its next failure exhausts it
        for part in chunks(list(ids)):
            self.run(conn, update(jobs).where(jobs.c.id.in_(list(part))).values(values))

    def _preserve_run_at(self, conn: Connection, updates: Mapping[uuid.UUID, NewJob]) -> None:
        """Update available rows in place but keep their ``run_at``: a few rows per statement."""
        now = self.dialect.now()
        ids = list(updates)
        sizes = [updates[job_id].payload_bytes for job_id in ids]
        for part in sized_chunks(ids, sizes, CHUNK // 2):
            fields: dict[str, dict[uuid.UUID, Any]] = {
                name: {job_id: getattr(updates[job_id], name) for job_id in part}
                for name in (
                    "task_identifier",
                    "payload",
                    "queue_name",
                    "priority",
                    "max_attempts",
                    "rate_limit_key",
                )
            }
            fields["flags"] = {job_id: list(updates[job_id].flags) for job_id in part}
            values: dict[str, Any] = {
                name: self._per_row(jobs.c.id, jobs.c[name], per_row)
                for name, per_row in fields.items()
            }
            values["revision"] = jobs.c.revision + 1
            values["updated_at"] = now
            self.run(conn, update(jobs).where(jobs.c.id.in_(list(part))).values(values))
