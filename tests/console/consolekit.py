"""Helpers for the console's browser tests: a headless Debian Chromium driven by Selenium, and a
:class:`Console` that works the page through the ids and ``data-*`` attributes of the DOM
contract (signing in, hash navigation, tabs, waiting for results and errors, screenshots).

The browser is Debian's ``chromium`` with its ``chromium-driver`` (``/usr/bin/chromium``,
``/usr/bin/chromedriver``; ``FCD_CHROMIUM`` / ``FCD_CHROMEDRIVER`` override them). Both paths
are given to Selenium explicitly, so Selenium Manager never looks for (or downloads) a browser
or a driver. Where either is missing the tests fail and name ``scripts/test``, which installs
them: a console test never skips.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
# The SDK suite's helpers (server process, SDK clients, zips, RAM users) are the same here.
sys.path.insert(0, str(REPO / "tests" / "sdk"))

# Selenium Manager is skipped when both paths are explicit; offline mode makes sure it never
# reaches out even if a later Selenium changes that.
os.environ.setdefault("SE_OFFLINE", "true")

try:
    from selenium import webdriver
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        TimeoutException,
    )
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webelement import WebElement
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError as exc:  # pragma: no cover - what a machine without the package sees
    raise RuntimeError(
        f"selenium is not installed ({exc}): scripts/test installs tests/sdk/requirements.txt"
    ) from exc

CHROMIUM = os.environ.get("FCD_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FCD_CHROMEDRIVER", "/usr/bin/chromedriver")
WINDOW = (1280, 900)
SHOTS = REPO / "target" / "console-screenshots"
WAIT_S = 20.0

# The python function most tests deploy: prints a line to find in logs, answers with its input.
HANDLER = """\
def handler(event, context):
    text = event.decode() if isinstance(event, bytes) else str(event)
    print('console-log-line ' + text)
    return 'hello ' + text
"""

TABS = ("config", "code", "invoke", "tasks", "instances", "logs", "metrics", "triggers")
# The element each tab shows once it is open (the DOM contract).
TAB_ELEMENT = {
    "config": "#function-config",
    "code": "#update-code-form",
    "invoke": "#invoke-submit",
    "tasks": "#tasks-table",
    "instances": "#instances-table",
    "logs": "#logs-view",
    "metrics": "#metrics-charts",
    "triggers": "#triggers-table",
}


def require_browser() -> None:
    """Fails (never skips) where the browser or its driver is missing."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.isfile(p) and os.access(p, os.X_OK))]
    if missing:
        pytest.fail(
            f"not installed: {', '.join(missing)} — the console tests need Debian's chromium and "
            "chromium-driver; scripts/test installs them (apt-get install chromium chromium-driver)",
            pytrace=False,
        )


def new_driver() -> "webdriver.Chrome":
    require_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--lang=en-US",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(arg)
    if os.geteuid() == 0:
        # Chromium refuses to run its sandbox as root; CI runs as root.
        options.add_argument("--no-sandbox")
    # The page's console messages (CSP violations, uncaught errors) are read by the tests.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_window_size(*WINDOW)
    driver.set_page_load_timeout(30)
    return driver


class Console:
    """One browser tab on one fcd's console."""

    def __init__(self, driver: "webdriver.Chrome", addr: str, name: str):
        self.driver = driver
        self.addr = addr
        self.base = f"http://{addr}/console"
        self.name = name  # the test's name: a prefix of its screenshots
        self.shots: list[Path] = []

    # Waiting ---------------------------------------------------------------------------------

    def until(self, what: Callable[[], object], message: str, timeout: float = WAIT_S):
        """Polls ``what()`` until it returns something truthy (stale elements are retried)."""

        def probe(_driver):
            try:
                return what()
            except (NoSuchElementException, StaleElementReferenceException):
                return False

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(probe)
        except TimeoutException:
            raise AssertionError(f"timed out after {timeout} s: {message}\n{self.page_state()}") from None

    def el(self, css: str, timeout: float = WAIT_S) -> WebElement:
        """The first element matching ``css`` once it is displayed."""

        def visible():
            for e in self.driver.find_elements(By.CSS_SELECTOR, css):
                if e.is_displayed():
                    return e
            return False

        return self.until(visible, f"no visible {css}", timeout)

    def present(self, css: str, timeout: float = WAIT_S) -> WebElement:
        """The first element matching ``css`` once it is in the DOM (shown or not)."""
        return self.until(
            lambda: self.driver.find_element(By.CSS_SELECTOR, css), f"no {css} in the page", timeout
        )

    def text_of(self, css: str, contains: str, timeout: float = WAIT_S) -> str:
        """Waits until the text of ``css`` contains ``contains``; returns the whole text."""

        def probe():
            for e in self.driver.find_elements(By.CSS_SELECTOR, css):
                t = e.get_attribute("textContent") or ""
                if contains in t:
                    return t
            return False

        return self.until(probe, f"{css} never contained {contains!r}", timeout)

    def page(self, data_page: str, timeout: float = WAIT_S) -> WebElement:
        return self.el(f'main#page[data-page="{data_page}"]', timeout)

    def error(self, code: Optional[str] = None, within: str = "", timeout: float = WAIT_S) -> tuple[str, str]:
        """A shown ``.error[data-code]`` (``code`` when given, inside ``within`` when given):
        returns ``(code, text)``; its text must be ``<ErrorCode>: <ErrorMessage>``."""
        sel = f'{within} .error[data-code="{code}"]' if code else f"{within} .error[data-code]"
        e = self.el(sel.strip(), timeout)
        got = e.get_attribute("data-code") or ""
        text = (e.get_attribute("textContent") or "").strip()
        assert text.startswith(f"{got}: ") and len(text) > len(got) + 2, (
            f"an error must read '<ErrorCode>: <ErrorMessage>', got {text!r}"
        )
        return got, text

    def no_error(self, within: str = "") -> None:
        shown = [
            e.get_attribute("textContent")
            for e in self.driver.find_elements(By.CSS_SELECTOR, f"{within} .error[data-code]".strip())
            if e.is_displayed()
        ]
        assert not shown, f"the page shows errors: {shown}"

    # Acting ----------------------------------------------------------------------------------

    def open(self) -> None:
        """Loads the page afresh (which signs out: the keys live in page memory only)."""
        self.driver.get(self.base)

    def go(self, route: str) -> None:
        """Hash navigation within the loaded page (no reload, so the keys stay)."""
        self.driver.execute_script("window.location.hash = arguments[0];", route)

    def type(self, css: str, text: str) -> WebElement:
        e = self.el(css)
        e.clear()
        if text:
            e.send_keys(text)
        return e

    def click(self, css: str) -> None:
        e = self.el(css)
        self.until(lambda: e.is_enabled(), f"{css} stays disabled")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", e)
        e.click()

    def select(self, css: str, value: str) -> None:
        Select(self.el(css)).select_by_value(value)

    def check(self, css: str, on: bool = True) -> None:
        e = self.el(css)
        if e.is_selected() != on:
            e.click()

    def sign_in(
        self,
        key_id: str,
        secret: str,
        token: Optional[str] = None,
        account: Optional[str] = None,
        expect_ok: bool = True,
    ) -> None:
        """Loads the page, fills the sign-in form and submits it; with ``expect_ok`` waits until
        ``#whoami`` shows the key id and the services page is up."""
        self.open()
        self.el("#signin-form")
        self.type("#ak-id", key_id)
        self.type("#ak-secret", secret)
        if token is not None:
            self.type("#sts-token", token)
        if account is not None:
            self.type("#account-id", account)
        self.click("#signin-submit")
        if expect_ok:
            self.text_of("#whoami", key_id)
            self.page("services")

    def function_route(self, service: str, function: str, tab: Optional[str] = None) -> str:
        route = f"#/services/{service}/functions/{function}"
        return f"{route}/{tab}" if tab else route

    def open_function(self, service: str, function: str) -> None:
        self.go(self.function_route(service, function))
        self.page("function")
        self.text_of('main#page[data-page="function"]', function)

    def tab(self, name: str) -> WebElement:
        """Clicks the function page's tab button and waits for what that tab shows."""
        self.click(f'[data-tab="{name}"]')
        return self.el(TAB_ELEMENT[name])

    # Evidence --------------------------------------------------------------------------------

    def shot(self, label: str) -> Path:
        """A PNG of the window under target/console-screenshots/ (a CI artifact)."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{self.name}--{label}.png"
        # Let a just-finished render settle (fonts, an SVG chart) before taking the picture.
        time.sleep(0.2)
        self.driver.save_screenshot(str(path))
        self.shots.append(path)
        return path

    def assert_clean_log(self) -> None:
        """No CSP violation and no uncaught error in the page's console so far (the browser's
        own favicon probe aside). Reading the log empties it."""
        bad = [
            m
            for m in self.browser_log()
            if (m.get("level") == "SEVERE" or "Content Security Policy" in (m.get("message") or ""))
            and "/favicon.ico" not in (m.get("message") or "")
        ]
        assert not bad, "the page's console reports: " + "\n".join(str(m.get("message")) for m in bad)

    def browser_log(self) -> list[dict]:
        try:
            return self.driver.get_log("browser")
        except Exception:  # a driver that went away: nothing more to read
            return []

    def page_state(self) -> str:
        try:
            url = self.driver.current_url
            body = self.driver.execute_script(
                "return document.body ? document.body.innerText.slice(0, 3000) : ''"
            )
        except Exception as exc:
            return f"(page state unavailable: {exc})"
        return f"url: {url}\npage text:\n{body}"

