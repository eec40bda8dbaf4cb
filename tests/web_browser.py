"""A real browser on a real server: Debian's headless Chromium driven through chromedriver.

Nothing is downloaded at run time: the browser and its driver are the
``chromium`` and ``chromium-driver`` packages (``.ci/run`` installs them), and
Selenium gets the driver's path so its own manager never looks elsewhere.
The dashboard runs mounted at :data:`PREFIX` in a FastAPI host app served by
uvicorn on 127.0.0.1 in a thread.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from queuekit import JobManager
from tests.web_helpers import PASSWORD, USER, authorizer

PREFIX = "/ops/queuekit"
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
]


def browser_problem() -> str | None:
    """None when Chromium and chromedriver are installed, else what is missing."""
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (apt-get install chromium chromium-driver)"
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium session with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(shutil.which("chromium"))
    profile = tempfile.mkdtemp(prefix="queuekit-chromium-")
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(shutil.which("chromedriver"))), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@contextmanager
def served(manager: JobManager, *, refresh: int = 2, role: str = "admin") -> Iterator[str]:
    """The dashboard in a FastAPI host app on 127.0.0.1; yields the origin with credentials."""
    import uvicorn
    from fastapi import FastAPI

    from queuekit.web import asgi_app

    app = FastAPI()
    app.mount(PREFIX, asgi_app(manager, authorize=authorizer(role), refresh=refresh))  # type: ignore[arg-type]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://{USER}:{PASSWORD}@127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def console_errors(driver: Any) -> list[str]:
    """Severe browser console entries (script errors, CSP violations, failed requests)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
