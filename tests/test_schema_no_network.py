"""Payload schemas never make queuekit touch the network or the filesystem.

A listening socket that accepts connections and never answers stands in for
a remote schema server: any attempt to fetch a ``$ref`` would either hang on
it or at least be counted. References that a schema document cannot resolve
by itself are refused at ``register_task``, nested ``$id`` or not, and a
stored schema with such a reference fails enqueues at once with a queuekit
error. Every test runs on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from queuekit import InvalidSchemaError, JobManager, PayloadValidationError
from queuekit.models import jobs, task_identifiers


class SilentServer:
    """A loopback TCP server that accepts connections, counts them and never replies."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.held: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self.held.append(connection)  # kept open and silent: a client would wait

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        for connection in self.held:
            connection.close()
        self.listener.close()


@pytest.fixture
def server() -> Iterator[SilentServer]:
    silent = SilentServer()
    yield silent
    silent.close()


def remote_schemas(port: int) -> list[dict[str, Any]]:
    """Schemas whose references could only be satisfied by fetching something."""
    url = f"http://127.0.0.1:{port}/remote.json"
    return [
        {"properties": {"a": {"$ref": url}}},
        # An unrelated nested $id used to switch the reference check off.
        {"properties": {"a": {"$ref": url}}, "$defs": {"x": {"$id": "urn:x"}}},
        {"$id": f"http://127.0.0.1:{port}/root.json", "properties": {"a": {"$ref": "other.json"}}},
        {"$defs": {"x": {"$id": f"http://127.0.0.1:{port}/x", "$ref": "sibling.json"}}},
        {"properties": {"a": {"$ref": "file:///etc/passwd"}}},
    ]


@pytest.mark.timeout(60)
def test_remote_references_are_refused_without_a_connection(
    clean_manager: JobManager, server: SilentServer
) -> None:
    for schema in remote_schemas(server.port):
        with pytest.raises(InvalidSchemaError, match="nothing is fetched"):
            clean_manager.register_task("t", schema=schema)
    assert server.accepted == 0
    assert clean_manager.get_task("t") is None


@pytest.mark.timeout(60)
def test_stored_remote_reference_fails_enqueue_without_a_connection(
    clean_manager: JobManager, server: SilentServer
) -> None:
    """A schema stored by other means (an older version, raw SQL) fetches nothing either."""
    engine = clean_manager.engine
    clean_manager.register_task("t", schema={"type": "object"})
    fresh = JobManager(engine, schema_cache_ttl=0)
    for version, schema in enumerate(remote_schemas(server.port), start=10):
        with engine.begin() as conn:
            conn.execute(
                sa.update(task_identifiers)
                .where(task_identifiers.c.identifier == "t")
                .values(payload_schema=schema, schema_version=version)
            )
        with pytest.raises(InvalidSchemaError):
            fresh.add_job("t", {"a": 1})
    assert server.accepted == 0
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar() == 0


def test_nested_ids_that_resolve_locally_are_accepted(clean_manager: JobManager) -> None:
    schema = {
        "type": "object",
        "$defs": {
            "address": {
                "$id": "urn:example:address",
                "$defs": {"part": {"type": "string", "minLength": 3}},
                "properties": {"street": {"$ref": "#/$defs/part"}},
            }
        },
        "properties": {"to": {"$ref": "urn:example:address"}},
    }
    clean_manager.register_task("mail", schema=schema)
    assert clean_manager.add_job("mail", {"to": {"street": "Main"}}).payload == {
        "to": {"street": "Main"}
    }
    with pytest.raises(PayloadValidationError) as caught:
        clean_manager.add_job("mail", {"to": {"street": "x"}})
    assert caught.value.errors[0]["path"] == "$.to.street"


def test_reference_into_a_nested_resource_must_exist(clean_manager: JobManager) -> None:
    schema = {
        "$defs": {"address": {"$id": "urn:example:address", "type": "object"}},
        "properties": {"to": {"$ref": "urn:example:address#/$defs/missing"}},
    }
    with pytest.raises(InvalidSchemaError, match="missing"):
        clean_manager.register_task("mail", schema=schema)
