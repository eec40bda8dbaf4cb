"""Screenshots of the dashboard's main pages for the docs (``make screenshots``).

Seeds a SQLite database with a little of everything, serves the dashboard
exactly as the browser tests do, and saves one PNG per page.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import sqlalchemy as sa

from queuekit import JobManager, JobSpec, migrations
from tests.web_browser import PREFIX, chromium, served
from tests.web_helpers import seed

PAGES = {
    "dashboard-overview.png": "/?window=1h",
    "dashboard-jobs.png": "/jobs",
    "dashboard-job.png": None,  # the failed job's detail, filled in below
    "dashboard-failures.png": "/history?status=failed",
    "dashboard-tasks.png": "/tasks",
}


def demo_data(manager: JobManager) -> str:
    """A little of everything; returns the failed job's detail path."""
    seeded = seed(manager, error="SMTP server said 421: try again later")
    manager.add_jobs([JobSpec("report.build", {"n": n}, queue_name="reports") for n in range(4)])
    manager.add_jobs([JobSpec("mail.send", {"to": f"u{n}@example.com"}) for n in range(30)])
    for _ in range(6):
        done = manager.get_jobs("worker-a", task_identifiers=["mail.send"], batch_size=4)
        manager.complete_jobs("worker-a", done, 40)
    manager.pause_tasks(["report.build"])
    return f"/jobs/{seeded.exhausted}"


def main(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        engine = sa.create_engine(f"sqlite:///{folder}/demo.db")
        migrations.upgrade(engine)
        manager = JobManager(engine)
        job_page = demo_data(manager)
        with served(manager, refresh=60) as origin, chromium() as driver:
            for name, page in PAGES.items():
                driver.get(f"{origin}{PREFIX}{page or job_page}")
                if page is None:
                    driver.find_element("css selector", "details summary").click()
                driver.save_screenshot(str(target / name))
                print(target / name)
        engine.dispose()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images"))
