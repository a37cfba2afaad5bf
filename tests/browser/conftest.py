"""Fixtures for the try-it page's browser tests: Debian's chromium, headless, driven by
Selenium through Debian's chromedriver, against the real server (tests/live_server.py).

``make test-page`` installs chromium and chromium-driver with apt when they are
missing; nothing is downloaded by Selenium (the driver's path is given, so Selenium
Manager is not asked). Each browser starts with a fresh profile and no background
networking, so every request in its performance log is one the page made.
Screenshots go to build/page/ (git-ignored).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.live_server import LiveServer, serve
from tests.support import PROJECT_DIR

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = PROJECT_DIR / "build" / "page"
API_KEY = "page-test-key-0123456789"
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


@dataclass
class Page:
    """The page in one browser, against one server, and what the browser logged."""

    driver: webdriver.Chrome
    base: str
    events: list[dict[str, Any]] = field(default_factory=list)
    console: list[dict[str, Any]] = field(default_factory=list)

    def open(self) -> None:
        """Load the page afresh: nothing stored from an earlier test, and nothing in the
        logs from before."""
        self.driver.get("about:blank")
        self.driver.get_log("performance")  # type: ignore[no-untyped-call]
        self.driver.get_log("browser")  # type: ignore[no-untyped-call]
        self.driver.get(f"{self.base}/")
        self.driver.execute_script("localStorage.clear(); sessionStorage.clear();")
        self.driver.get(f"{self.base}/")
        self.wait_for(lambda: self.text("runtime") != "Reading what the sandbox holds…")

    def by_id(self, element_id: str) -> WebElement:
        return self.driver.find_element(By.ID, element_id)

    def text(self, element_id: str) -> str:
        """What the element shows, as the DOM holds it (textContent, whitespace kept)."""
        value: str = self.driver.execute_script(
            "return document.getElementById(arguments[0]).textContent;", element_id
        )
        return value

    def shown(self, element_id: str) -> bool:
        return self.by_id(element_id).is_displayed()

    def value(self, element_id: str) -> str:
        value: str = self.driver.execute_script(
            "return document.getElementById(arguments[0]).value;", element_id
        )
        return value

    def active_id(self) -> str:
        active: str = self.driver.execute_script("return document.activeElement.id;")
        return active

    def wait_for(self, condition: Callable[[], object], timeout: float = 30) -> None:
        WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(lambda _driver: condition())

    def answers(self) -> int:
        """How many answers (or problems) the page has shown so far."""
        return int(self.driver.execute_script("return document.body.dataset.answers || 0;"))

    def keys(self, *keys: str) -> None:
        """Keystrokes to whatever has the focus, as a person types them."""
        ActionChains(self.driver).send_keys(*keys).perform()

    def chord(self, modifier: str, *keys: str) -> None:
        """``keys`` with ``modifier`` held down (Ctrl+A, Shift+Tab...)."""
        ActionChains(self.driver).key_down(modifier).send_keys(*keys).key_up(modifier).perform()

    def run_by_keyboard(self, timeout: float = 60) -> None:
        """Ctrl+Enter, then wait for the answer."""
        before = self.answers()
        ActionChains(self.driver).key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(
            Keys.CONTROL
        ).perform()
        self.wait_for(lambda: self.answers() > before, timeout)

    def load_example(self, name: str) -> None:
        Select(self.by_id("example")).select_by_value(name)
        self.by_id("load-example").click()

    def run_example(self, name: str, timeout: float = 60) -> None:
        self.load_example(name)
        before = self.answers()
        self.by_id("run").click()
        self.wait_for(lambda: self.answers() > before, timeout)

    def set_script(self, source: str) -> None:
        """Put ``source`` in the editor as a paste would (an input event)."""
        self.driver.execute_script(
            "const editor = document.getElementById('script');"
            "editor.value = arguments[0];"
            "editor.dispatchEvent(new Event('input'));",
            source,
        )

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def network(self) -> list[dict[str, Any]]:
        """Every DevTools Network event so far (the performance log, accumulated)."""
        for entry in self.driver.get_log("performance"):  # type: ignore[no-untyped-call]
            message = json.loads(entry["message"])["message"]
            if message["method"].startswith("Network."):
                self.events.append(message)
        return self.events

    def requests(self) -> list[dict[str, Any]]:
        """Every request made from a document that is not the browser's own (its new tab
        page, chrome://, loads at start-up): method, url, headers, requestId, postData."""
        return [
            {"requestId": event["params"]["requestId"], **event["params"]["request"]}
            for event in self.network()
            if event["method"] == "Network.requestWillBeSent"
            and not event["params"].get("documentURL", "").startswith("chrome://")
        ]

    def executions(self) -> list[dict[str, Any]]:
        return [
            sent
            for sent in self.requests()
            if sent["method"] == "POST" and sent["url"] == f"{self.base}/execute"
        ]

    def posted_body(self, sent: dict[str, Any]) -> Any:
        """The JSON body of a request the page made."""
        if "postData" in sent:
            return json.loads(sent["postData"])
        answer = self.driver.execute_cdp_cmd(
            "Network.getRequestPostData", {"requestId": sent["requestId"]}
        )
        return json.loads(answer["postData"])

    def answer_body(self, sent: dict[str, Any]) -> Any:
        """The JSON body of the answer to a request the page made."""
        answer = self.driver.execute_cdp_cmd(
            "Network.getResponseBody", {"requestId": sent["requestId"]}
        )
        return json.loads(answer["body"])

    def console_errors(self) -> list[dict[str, Any]]:
        """Console messages of level SEVERE (a CSP violation, an uncaught exception),
        but for the browser's note of each 4xx or 5xx answer, which the tests ask for."""
        self.console.extend(self.driver.get_log("browser"))  # type: ignore[no-untyped-call]
        return [
            entry
            for entry in self.console
            if entry["level"] == "SEVERE" and entry.get("source") != "network"
        ]


def _driver(profile: str, width: int = 1280, height: int = 1080) -> webdriver.Chrome:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            pytest.fail(
                f"{path} is missing: `make test-page` installs Debian's chromium and "
                "chromium-driver"
            )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return webdriver.Chrome(service=DriverService(CHROMEDRIVER), options=options)


@contextlib.contextmanager
def browser(base: str) -> Iterator[Page]:
    """A fresh headless chromium on the page of the server at ``base``; the test fails
    if the page asked any other origin for anything, or broke its own CSP."""
    profile = tempfile.mkdtemp(prefix="pyexec-page-")
    driver = _driver(profile)
    page = Page(driver, base)
    try:
        page.open()
        yield page
        foreign = [
            sent["url"]
            for sent in page.requests()
            if not sent["url"].startswith((f"{base}/", "data:", "blob:"))
        ]
        assert foreign == [], f"the page asked another origin: {foreign}"
        assert page.console_errors() == []
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def server() -> Iterator[LiveServer]:
    """The real server with its defaults: the page on, no API keys."""
    with serve() as live:
        yield live


@pytest.fixture(scope="session")
def keyed_server() -> Iterator[LiveServer]:
    """The real server with an API key and one slot, no queue: a second script at once
    is 503 ``overloaded``."""
    with serve(PYEXEC_API_KEYS=API_KEY, PYEXEC_MAX_CONCURRENT="1", PYEXEC_MAX_QUEUE="0") as live:
        yield live


@pytest.fixture
def page(server: LiveServer) -> Iterator[Page]:
    with browser(server.base) as opened:
        yield opened


@pytest.fixture
def keyed_page(keyed_server: LiveServer) -> Iterator[Page]:
    with browser(keyed_server.base) as opened:
        yield opened


def post(base: str, body: dict[str, Any], key: str = API_KEY) -> tuple[int, Any]:
    """POST /execute from the test itself (not the page), with the API key."""
    request = urllib.request.Request(
        f"{base}/execute",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": key},
    )
    try:
        with urllib.request.urlopen(request, timeout=90) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as refused:
        return refused.code, json.load(refused)


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
