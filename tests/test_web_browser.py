"""The dashboard in Debian's headless Chromium, on every dialect, under /ops/queuekit."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from queuekit import JobManager
from tests.web_browser import PREFIX, browser_problem, chromium, console_errors, served
from tests.web_helpers import seed

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    """One browser for the module; a missing browser fails in CI, skips elsewhere."""
    problem = browser_problem()
    if problem is not None:
        if os.environ.get("QUEUEKIT_REQUIRE_SERVERS") == "1":
            pytest.fail(f"browser tests need Chromium: {problem}")
        pytest.skip(problem)
    with chromium() as browser:
        yield browser


def notice_says(driver: Any, text: str) -> bool:
    """Whether the page's action notice contains ``text`` (a stale page may hold an older one)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        return any(text in e.text for e in driver.find_elements(By.ID, "notice"))
    except StaleElementReferenceException:
        return False


def on_a_still_page(action: Any, timeout: float = 15.0) -> Any:
    """Run ``action``, again if live polling swapped the elements it used meanwhile."""
    from selenium.common.exceptions import WebDriverException

    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except WebDriverException:  # stale or detached element: the page refreshed under us
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def press(element: Any, label: str) -> None:
    """Click the button labelled ``label`` inside ``element``."""
    from selenium.webdriver.common.by import By

    element.find_element(By.XPATH, f".//button[normalize-space()='{label}']").click()


def wait_for(check: Any, timeout: float = 15.0) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        time.sleep(0.2)


def test_operator_session(driver: Any, clean_manager: JobManager) -> None:
    from selenium.webdriver.common.by import By

    seeded = seed(clean_manager)
    driver.get_log("browser")  # start with an empty console log
    with served(clean_manager) as origin:
        # Log in (basic auth) and land on the overview.
        driver.get(f"{origin}{PREFIX}/")
        assert driver.find_element(By.ID, "role").text == "admin"
        assert driver.find_element(By.ID, "count-waiting").text.startswith("1")

        # Jobs appear live as they are enqueued, without a reload.
        driver.get(f"{origin}{PREFIX}/jobs?task=live.task")
        marker = driver.find_element(By.TAG_NAME, "h1")
        assert "no jobs match" in driver.find_element(By.ID, "jobs").text
        added = [clean_manager.add_job("live.task", {"n": n}).id for n in range(3)]
        wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#jobs tr[data-job-id]")) == 3)
        shown = on_a_still_page(
            lambda: {
                e.get_attribute("data-job-id")
                for e in driver.find_elements(By.CSS_SELECTOR, "#jobs tr[data-job-id]")
            }
        )
        assert shown == {str(i) for i in added}
        assert marker.is_displayed()  # same document: the rows came by htmx, not a reload

        # Open the failed job and read its traceback.
        driver.get(f"{origin}{PREFIX}/jobs/{seeded.exhausted}")
        assert driver.find_element(By.ID, "status").text == "exhausted"
        driver.find_element(By.CSS_SELECTOR, "details summary").click()
        traceback = driver.find_element(By.CSS_SELECTOR, "pre.traceback")
        assert traceback.is_displayed()
        assert "RuntimeError: SMTP down" in traceback.text

        # Replay it: a new job with the replay flag.
        button = driver.find_element(By.XPATH, "//button[normalize-space()='Replay as a new job']")
        button.click()
        wait_for(lambda: notice_says(driver, "replay: 1 affected"))
        replays = [
            j for j in clean_manager.list_jobs(task_identifier="mail.send") if "replay" in j.flags
        ]
        assert len(replays) == 1
        assert driver.current_url.startswith(f"{origin}{PREFIX}/jobs/{seeded.exhausted}?notice=")

        # Cancel a waiting job (confirm dialog accepted).
        driver.get(f"{origin}{PREFIX}/jobs/{seeded.waiting}")
        driver.find_element(By.XPATH, "//button[normalize-space()='Cancel']").click()
        driver.switch_to.alert.accept()
        wait_for(lambda: notice_says(driver, "cancel: "))
        assert clean_manager.get_job(seeded.waiting) is None

        # Pause a task and see claims stop.
        driver.get(f"{origin}{PREFIX}/tasks")
        task_row = 'tr[data-task="live.task"]'
        on_a_still_page(lambda: press(driver.find_element(By.CSS_SELECTOR, task_row), "Pause"))
        wait_for(lambda: notice_says(driver, "pause: "))
        assert clean_manager.get_jobs("browser-worker", task_identifiers=["live.task"]) == []
        row_text = on_a_still_page(lambda: driver.find_element(By.CSS_SELECTOR, task_row).text)
        assert "paused" in row_text
        # The pause notice is still on the page until the resume redirect lands:
        # wait for the resume notice itself, not for any notice.
        on_a_still_page(lambda: press(driver.find_element(By.CSS_SELECTOR, task_row), "Resume"))
        wait_for(lambda: notice_says(driver, "resume: "))
        assert len(clean_manager.get_jobs("browser-worker", task_identifiers=["live.task"])) == 1

        errors = console_errors(driver)
        driver.get("about:blank")  # stop polling before the server goes away
        assert errors == []
