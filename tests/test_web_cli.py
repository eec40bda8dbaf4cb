"""``queuekit web``: closed unless told otherwise, and it really serves."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from queuekit import JobManager, migrations
from queuekit.cli import cli


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'web.db'}"
    engine = sa.create_engine(url)
    migrations.upgrade(engine)
    JobManager(engine).add_job("visible.task", {})
    engine.dispose()
    return url


def test_refuses_to_start_without_a_login(sqlite_url: str) -> None:
    runner = CliRunner()
    for args in (["web"], ["web", "--read-only"], ["web", "--insecure-no-auth"]):
        result = runner.invoke(cli, ["--database-url", sqlite_url, *args])
        assert result.exit_code == 2, result.output
        assert "refusing to serve the dashboard without a login" in result.output
    result = runner.invoke(
        cli,
        ["--database-url", sqlite_url, "web", "--user", "ops"],
        env={"QUEUEKIT_WEB_PASSWORD": ""},
    )
    assert result.exit_code == 2
    assert "QUEUEKIT_WEB_PASSWORD" in result.output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(sqlite_url: str, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "QUEUEKIT_WEB_PASSWORD": "pw"}
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "queuekit"),
            "--database-url",
            sqlite_url,
            "web",
            "--port",
            str(port),
            *args,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(base + "/healthz", timeout=1)
            return process, base
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(process.stderr.read().decode() if process.stderr else "no server")


def test_serves_with_basic_auth(sqlite_url: str) -> None:
    process, base = serve(sqlite_url, "--user", "ops")
    try:
        assert httpx.get(base + "/jobs").status_code == 401
        reply = httpx.get(base + "/jobs", auth=("ops", "pw"))
        assert reply.status_code == 200
        assert "visible.task" in reply.text
        assert 'method="post"' in reply.text
        assert httpx.get(base + "/jobs", auth=("ops", "wrong")).status_code == 401
    finally:
        process.terminate()
        process.wait(10)


def test_open_read_only_view(sqlite_url: str) -> None:
    process, base = serve(sqlite_url, "--read-only", "--insecure-no-auth")
    try:
        reply = httpx.get(base + "/jobs")
        assert reply.status_code == 200 and "visible.task" in reply.text
        assert 'method="post"' not in reply.text
        assert httpx.post(base + "/bulk", data={"action": "fail"}).status_code == 403
    finally:
        process.terminate()
        process.wait(10)
