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
