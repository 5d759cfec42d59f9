"""Issue acceptance: the example page in headless Chromium, through the dev
gateway, to a real module process and a real pineapple-jobd running the opkg
stand-in. Screenshots go to test-artifacts/modules/."""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.modules.helpers import REPO

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = REPO / "test-artifacts" / "modules"
PAGE = "/modules/packetsnoop/"
# Each package download takes this long in the stand-in: slow enough to watch the bar move.
DOWNLOAD_DELAY = "1.5"
WAIT = 20.0


@pytest.fixture
def driver() -> Iterator[object]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not installed: run .ci/run (it apt-get installs chromium and "
                    "chromium-driver) before the browser test")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1000,800", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        browser.set_page_load_timeout(WAIT)
        browser.set_script_timeout(WAIT)
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(driver, gateway, start_daemon, start_module):
    """``page(dependencies)``: daemon + packetsnoop backend + gateway, page loaded and idle."""
    from selenium.webdriver.support.ui import WebDriverWait

    def open_page(dependencies: str):
        daemon = start_daemon(env={"OPKG_STANDIN_DOWNLOAD_DELAY": DOWNLOAD_DELAY})
        start_module("packetsnoop", {"PINEAPPLE_JOBD_SOCKET": str(daemon.socket),
                                     "PACKETSNOOP_DEPENDENCIES": dependencies})
        driver.get(gateway.url + PAGE)
        WebDriverWait(driver, WAIT).until(lambda d: state(d) == "idle", "the page never became idle")
        return driver

    return open_page


def state(driver) -> str | None:
    return driver.execute_script("return document.body.dataset.state")


def progress(driver) -> float | None:
    """The bar's value, or None while indeterminate."""
    return driver.execute_script(
        "const bar = document.getElementById('progress'); return bar.hasAttribute('value') ? bar.value : null;")


def screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path)), f"could not save {path}"
    return path


def click_install_and_wait(driver) -> list[float | None]:
    """Click Install and wait until the page says the job ended; the bar values seen."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.find_element(By.ID, "install").click()
    seen: list[float | None] = []

    def ended(d) -> bool:
        seen.append(progress(d))
        return state(d) in ("succeeded", "failed")

    WebDriverWait(driver, 45, poll_frequency=0.1).until(ended, "the install never ended on the page")
    return seen


def test_install_shows_progress_then_installed(page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = page("myapp")
    try:
        item = driver.find_element(By.CSS_SELECTOR, 'li[data-package="myapp"]')
        assert item.get_attribute("data-installed") == "false" and "not installed" in item.text

        seen = click_install_and_wait(driver)
        assert state(driver) == "succeeded", driver.find_element(By.ID, "error").text
        assert progress(driver) == 100
        assert any(value is not None and 0 < value < 100 for value in seen), seen  # it moved on the way
        assert "100%" in driver.find_element(By.ID, "progress-text").text
        WebDriverWait(driver, WAIT).until(
            lambda d: d.find_element(By.CSS_SELECTOR, 'li[data-package="myapp"]').get_attribute("data-installed")
            == "true", "myapp never showed as installed")
        assert "installed 1.2.3-1" in driver.find_element(By.CSS_SELECTOR, 'li[data-package="myapp"]').text
        assert not driver.find_element(By.ID, "error").is_displayed()
    finally:
        screenshot(driver, "packetsnoop-install-succeeded.png")


def test_failing_install_shows_opkgs_error(page):
    from selenium.webdriver.common.by import By

    driver = page("failpkg")
    try:
        click_install_and_wait(driver)
        assert state(driver) == "failed"
        error = driver.find_element(By.ID, "error")
        assert error.is_displayed()
        assert 'package "failpkg" postinst script returned status 3' in error.text
        item = driver.find_element(By.CSS_SELECTOR, 'li[data-package="failpkg"]')
        assert item.get_attribute("data-installed") == "false"
    finally:
        screenshot(driver, "packetsnoop-install-failed.png")


def test_reloaded_page_finds_the_running_install(page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = page("otherapp")
    try:
        driver.find_element(By.ID, "install").click()
        WebDriverWait(driver, WAIT, poll_frequency=0.1).until(
            lambda d: (progress(d) or 0) > 0, "the install never made progress")
        driver.refresh()  # rebind_last_job picks the running job up again
        WebDriverWait(driver, WAIT, poll_frequency=0.1).until(
            lambda d: state(d) == "running", "the reloaded page did not follow the running install")
        WebDriverWait(driver, 45, poll_frequency=0.2).until(
            lambda d: state(d) in ("succeeded", "failed"), "the install never ended on the reloaded page")
        assert state(driver) == "succeeded"
        assert driver.find_element(By.CSS_SELECTOR, 'li[data-package="otherapp"]').get_attribute(
            "data-installed") == "true"
    finally:
        screenshot(driver, "packetsnoop-reload-rebind.png")


# ------------------------------------------------------------------ the jobs page
JOBS_PAGE = "/modules/jobs/"


@pytest.fixture
def jobs_page(driver, gateway, start_daemon, start_module):
    """Daemon (slow downloads) + jobs backend + gateway + page; yields (driver, client of the daemon)."""
    from selenium.webdriver.support.ui import WebDriverWait

    from pineapple.api.client import JobClient

    daemon = start_daemon(env={"OPKG_STANDIN_DOWNLOAD_DELAY": DOWNLOAD_DELAY})
    start_module("jobs", {"PINEAPPLE_JOBD_SOCKET": str(daemon.socket)})
    driver.get(gateway.url + JOBS_PAGE)
    WebDriverWait(driver, WAIT).until(lambda d: state(d) == "live", "the jobs page never went live")
    with JobClient(str(daemon.socket)) as client:
        yield driver, client


def job_row(driver, job_id: str):
    from selenium.common.exceptions import NoSuchElementException
    from selenium.webdriver.common.by import By

    try:
        return driver.find_element(By.CSS_SELECTOR, f'tr[data-job-id="{job_id}"]')
    except NoSuchElementException:
        return None


def row_state(driver, job_id: str) -> str | None:
    row = job_row(driver, job_id)
    return row.get_attribute("data-state") if row is not None else None


def row_progress(driver, job_id: str) -> float | None:
    return driver.execute_script(
        "const bar = document.querySelector(`tr[data-job-id='${arguments[0]}'] progress`);"
        "return bar && bar.hasAttribute('value') ? bar.value : null;", job_id)


def wait_row(driver, job_id: str, states: tuple[str, ...], timeout: float = 45, seen: list | None = None) -> str:
    from selenium.webdriver.support.ui import WebDriverWait

    def reached(d):
        if seen is not None:
            seen.append(row_progress(d, job_id))
        return row_state(d, job_id) in states

    WebDriverWait(driver, timeout, poll_frequency=0.1).until(reached, f"job {job_id} never reached {states} "
                                                                      f"(now {row_state(driver, job_id)})")
    return row_state(driver, job_id)


def test_jobs_page_shows_jobs_live(jobs_page):
    from selenium.webdriver.common.by import By

    driver, client = jobs_page
    try:
        job_id = client.install(["myapp"])["job_id"]
        seen: list = []
        wait_row(driver, job_id, ("running",), WAIT)
        assert wait_row(driver, job_id, ("succeeded", "failed"), seen=seen) == "succeeded"
        assert any(value is not None and 0 < value < 100 for value in seen), seen  # the bar moved live
        row = job_row(driver, job_id)
        assert row.find_element(By.CSS_SELECTOR, "td.job").text.startswith("install")
        assert row.find_element(By.CSS_SELECTOR, "td.packages").text == "myapp"
        assert row_progress(driver, job_id) == 100
        log = row.find_element(By.CSS_SELECTOR, "pre.log").text
        assert "myapp" in log, log  # opkg's own lines
        assert not row.find_element(By.CSS_SELECTOR, "button.cancel").is_enabled()
        assert row.find_element(By.CSS_SELECTOR, "button.restart").is_enabled()

        failed = client.install(["failpkg"])["job_id"]
        assert wait_row(driver, failed, ("succeeded", "failed")) == "failed"
        error = job_row(driver, failed).find_element(By.CSS_SELECTOR, ".job-error").text
        assert 'package "failpkg" postinst script returned status 3' in error, error
        assert "2 job(s)" in driver.find_element(By.ID, "summary").text
    finally:
        screenshot(driver, "jobs-live.png")


def test_jobs_page_cancel_and_restart(jobs_page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver, client = jobs_page
    try:
        job_id = client.install(["otherapp"])["job_id"]
        WebDriverWait(driver, WAIT, poll_frequency=0.1).until(
            lambda d: (row_progress(d, job_id) or 0) > 0, "the install never made progress on the page")
        job_row(driver, job_id).find_element(By.CSS_SELECTOR, "button.cancel").click()
        assert wait_row(driver, job_id, ("cancelled", "succeeded", "failed")) == "cancelled"
        assert client.get(job_id)["state"] == "cancelled"
        screenshot(driver, "jobs-cancelled.png")

        job_row(driver, job_id).find_element(By.CSS_SELECTOR, "button.restart").click()
        WebDriverWait(driver, WAIT).until(lambda d: client.get(job_id).get("child_id"), "no restart happened")
        child = client.get(job_id)["child_id"]
        assert wait_row(driver, child, ("succeeded", "failed")) == "succeeded"
        assert f"restart of {job_id[:8]}" in job_row(driver, child).find_element(By.CSS_SELECTOR, "td.job").text
        assert client.get(child)["parent_id"] == job_id
        rows = [r.get_attribute("data-job-id") for r in driver.find_elements(By.CSS_SELECTOR, "#rows tr")]
        assert rows[:2] == [child, job_id]  # newest first
    finally:
        screenshot(driver, "jobs-restarted.png")


def test_jobs_page_says_when_the_daemon_is_down(driver, gateway, start_module, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    start_module("jobs", {"PINEAPPLE_JOBD_SOCKET": str(tmp_path / "no-daemon.sock")})
    driver.get(gateway.url + JOBS_PAGE)
    try:
        WebDriverWait(driver, WAIT).until(lambda d: state(d) == "error", "the page never reported the error")
        assert "pineapple-jobd is not reachable" in driver.find_element(By.ID, "error").text
    finally:
        screenshot(driver, "jobs-daemon-down.png")
