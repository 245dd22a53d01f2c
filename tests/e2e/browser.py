"""A real browser for console tests: Debian's headless Chromium driven by Selenium.

`browser` is a factory fixture: `browser.open(width=375)` starts one Chromium (below
600 px, a phone's screen is emulated); every window is closed at teardown. Screenshots go to
the test's output folder, `test-output/<test name>/` at the top of the
repository (or under `ITSMD_TEST_OUTPUT`), kept after the run so a person can
look at them.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import require_binary

REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 10.0
PHONE_MAX = 600  # narrower windows are phones
_GONE = (NoSuchElementException, StaleElementReferenceException)


def output_dir(request: pytest.FixtureRequest) -> Path:
    root = Path(os.environ.get("ITSMD_TEST_OUTPUT", REPO_ROOT / "test-output"))
    folder = root / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Browser:
    """One Chromium window and where its screenshots go."""

    def __init__(self, driver: WebDriver, shots: Path) -> None:
        self.driver = driver
        self._shots = shots

    def screenshot(self, name: str, full_page: bool = False) -> Path:
        """The window, or with `full_page` the whole page however long it is."""
        path = self._shots / f"{name}.png"
        if full_page:
            shot = self.driver.execute_cdp_cmd(  # type: ignore[attr-defined]
                "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
            )
            path.write_bytes(base64.b64decode(shot["data"]))
        else:
            assert self.driver.save_screenshot(str(path)), f"no screenshot written to {path}"
        return path

    def wait(
        self, condition: Callable[[WebDriver], Any], what: str, timeout_s: float = WAIT_S
    ) -> Any:
        """Until `condition` is truthy. An element that vanishes while it is read (a
        form's answer loading, a live update swapping the page) is read again."""
        return WebDriverWait(
            self.driver, timeout_s, poll_frequency=0.1, ignored_exceptions=_GONE
        ).until(condition, message=f"waited {timeout_s:g}s for {what}")

    def click(self, by: str, value: str, what: str) -> None:
        """Click the element once it is there, again if a live update replaced it."""

        def clicked(d: WebDriver) -> bool:
            d.find_element(by, value).click()
            return True

        self.wait(clicked, what)


class BrowserFactory:
    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request
        self._open: list[Browser] = []

    def open(self, width: int = 1280, height: int = 900) -> Browser:
        chromium = require_binary("chromium", "chromium", "chromium-browser")
        driver_bin = require_binary("chromedriver", "chromedriver")
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for arg in (
            "--headless=new",
            "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            "--lang=en-US",
        ):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(driver_bin), options=options)
        if width < PHONE_MAX:
            # Headless Chromium keeps windows at least ~500 px wide: a phone's screen is
            # emulated instead, as DevTools' device mode does (the viewport meta counts).
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 2, "mobile": True},
            )
        browser = Browser(driver, output_dir(self._request))
        self._open.append(browser)
        return browser

    def close(self) -> None:
        for browser in self._open:
            browser.driver.quit()


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Iterator[BrowserFactory]:
    factory = BrowserFactory(request)
    try:
        yield factory
    finally:
        factory.close()
