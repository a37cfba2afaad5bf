"""The try-it page at GET / in a real browser (headless chromium) against the real
server: typed and run by keyboard only, a success, an exception with its line marked in
the editor, a timeout, a chart, hostile output shown as text, the whole request
contract, API keys, a busy server, an unavailable sandbox, labels, contrast and a
360 px wide screen. Every test also checks, on leaving, that the page asked no other
origin for anything and broke no rule of its CSP (tests/browser/conftest.py).
"""

from __future__ import annotations

import base64
import http.client
import json
import struct
import threading
import time
from pathlib import Path
from typing import Any

from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from pyexec.schemas import load_schema, validator
from tests.browser.conftest import API_KEY, Page, browser, post, wait_until
from tests.live_server import LiveServer, serve_unhealthy

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HOSTILE = "<img src=x onerror=alert(1)>"


def tab_to(page: Page, element_id: str, most: int = 30) -> int:
    """Press Tab from the top of the page until ``element_id`` has the focus; how many."""
    for presses in range(1, most + 1):
        page.keys(Keys.TAB)
        if page.active_id() == element_id:
            return presses
    raise AssertionError(f"Tab never reached #{element_id}")


def test_a_script_typed_and_run_by_keyboard_only_shows_result_output_and_usage(
    page: Page,
) -> None:
    tab_to(page, "script")
    page.chord(Keys.CONTROL, "a")
    page.keys(Keys.BACKSPACE)
    page.keys(
        "def main():\n",
        Keys.TAB,
        'print("typed", 6 * 7)\n',
        Keys.TAB,
        'return {"sum": 1 + 2, "text": "ok"}\n',
    )
    assert page.value("script") == (
        'def main():\n    print("typed", 6 * 7)\n    return {"sum": 1 + 2, "text": "ok"}\n'
    )
    page.run_by_keyboard()

    assert page.text("summary") == "main() returned (200)."
    assert page.text("result") == '{\n  "sum": 3,\n  "text": "ok"\n}'
    assert page.text("stdout") == "typed 42\n"
    assert page.text("stderr") == ""
    assert not page.shown("stdout-truncated")
    assert not page.shown("failure")
    assert page.text("used-wall").endswith(" ms")
    assert page.text("used-memory").endswith(" MB")
    assert (page.text("limit-wall"), page.text("limit-cpu"), page.text("limit-memory")) == (
        "10 s",
        "10 s",
        "256 MB",
    )
    page.screenshot("success")

    # Tab indents; Esc then Tab leaves the editor without touching the script.
    page.keys(Keys.ESCAPE, Keys.TAB)
    assert page.active_id() == "run"
    assert page.value("script").endswith('"ok"}\n')
    # Shift+Tab outdents the line the caret is on.
    page.by_id("script").click()
    page.chord(Keys.CONTROL, Keys.END)
    page.keys(Keys.ARROW_UP)
    page.chord(Keys.SHIFT, Keys.TAB)
    assert page.value("script").endswith('\nreturn {"sum": 1 + 2, "text": "ok"}\n')


def test_the_script_survives_a_reload(page: Page) -> None:
    page.set_script("def main():\n    return 'kept'\n")
    page.driver.refresh()
    assert page.value("script") == "def main():\n    return 'kept'\n"


def test_an_exception_shows_kind_message_traceback_and_marks_the_scripts_line(
    page: Page,
) -> None:
    page.run_example("error")

    assert page.text("summary") == "exception (400)"
    assert page.text("failure-kind") == "exception"
    assert page.text("failure-message") == "ZeroDivisionError in main(): division by zero"
    assert page.text("failure-line-text") == (
        "Line 2 of the script in average: return sum(values) / len(values)"
    )
    assert page.text("traceback").startswith("Traceback (most recent call last):")
    assert 'File "script", line 2, in average' in page.text("traceback")
    assert page.text("stdout") == "averaging an empty list\n"
    # The line is marked in the editor: the bar behind line 2, and its number.
    bar = page.by_id("error-line")
    assert bar.is_displayed()
    assert bar.get_attribute("data-line") == "2"
    assert page.driver.find_element(By.CSS_SELECTOR, "#gutter .bad").text == "2"
    top = page.driver.execute_script(
        "const editor = document.getElementById('script');"
        "const style = getComputedStyle(editor);"
        "const bar = document.getElementById('error-line').getBoundingClientRect();"
        "return [bar.top - editor.getBoundingClientRect().top,"
        " parseFloat(style.paddingTop), parseFloat(style.lineHeight)];"
    )
    offset, padding, line_height = top
    assert abs(offset - (padding + line_height)) < 1.5
    page.screenshot("exception")

    # "Show in editor" selects that line.
    page.by_id("show-line").click()
    assert page.active_id() == "script"
    selected = page.driver.execute_script(
        "const e = document.getElementById('script');"
        "return e.value.slice(e.selectionStart, e.selectionEnd);"
    )
    assert selected == "    return sum(values) / len(values)"
    # Editing the script clears the mark: the line may have moved.
    page.keys(Keys.END, "\n")
    assert not bar.is_displayed()


def test_a_timeout_shows_its_kind_the_limit_and_what_was_printed(page: Page) -> None:
    page.run_example("timeout")
    assert page.text("summary") == "timeout (400)"
    assert page.text("failure-kind") == "timeout"
    assert "time limit of 2 s" in page.text("failure-message")
    assert page.text("stdout") == "sleeping longer than the 2 s limit\n"
    assert page.text("limit-wall") == "2 s"
    assert "field" in page.text("failure-details")
    assert not page.shown("error-line")
    page.screenshot("timeout")


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR, after checking its signature."""
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_a_chart_is_shown_as_a_decoded_png_with_a_download_link(page: Page) -> None:
    page.run_example("chart")

    assert page.text("summary") == "main() returned (200)."
    assert page.value("output-files") == "*.png"
    assert page.text("result") == '{\n  "points": 11,\n  "largest": 100\n}'
    assert page.text("stdout") == "plotted 11 points\n"
    image = page.driver.find_element(By.CSS_SELECTOR, "#returned-files img")
    decoded = page.driver.execute_async_script(
        "const [image, done] = arguments;"
        "image.decode().then("
        " () => done([image.naturalWidth, image.naturalHeight, image.src]),"
        " (error) => done(String(error)));",
        image,
    )
    assert isinstance(decoded, list), decoded
    width, height, source = decoded
    assert source.startswith("blob:")
    # The bytes the server sent decode to a PNG of that size.
    sent = page.executions()[-1]
    entry = page.answer_body(sent)["files"][0]
    assert (entry["path"], entry["mime_type"], entry["encoding"]) == (
        "chart.png",
        "image/png",
        "base64",
    )
    assert png_size(base64.b64decode(entry["content"])) == (width, height)
    assert width > 0
    assert height > 0
    link = page.driver.find_element(By.CSS_SELECTOR, "#returned-files a")
    assert link.get_attribute("download") == "chart.png"
    assert (link.get_attribute("href") or "").startswith("blob:")
    assert link.text == "Download chart.png"
    page.driver.execute_script("window.scrollTo(0, 0);")
    page.screenshot("chart")  # docs/try-it.png is one of these


def test_what_a_script_prints_or_returns_is_shown_as_text_never_as_html(page: Page) -> None:
    page.set_script(
        "import sys\n"
        "def main():\n"
        f"    print({HOSTILE!r})\n"
        f"    sys.stderr.write({HOSTILE!r})\n"
        "    with open('x.html', 'w') as f:\n"
        "        f.write('<script>alert(2)</script>')\n"
        "    with open('evil.svg', 'w') as f:\n"
        '        f.write(\'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(3)">'
        "<script>alert(4)</script></svg>')\n"
        f"    raise ValueError({HOSTILE!r})\n"
    )
    page.by_id("options").click()
    page.by_id("output-files").send_keys("*.html\n*.svg")
    before = page.answers()
    page.by_id("run").click()
    page.wait_for(lambda: page.answers() > before)

    assert page.text("stdout") == HOSTILE + "\n"
    assert page.text("stderr") == HOSTILE
    assert page.text("failure-message") == f"ValueError in main(): {HOSTILE}"
    assert HOSTILE in page.text("traceback")
    assert page.driver.find_elements(By.CSS_SELECTOR, "img[src='x'], img[src$='/x']") == []
    assert page.driver.find_elements(By.CSS_SELECTOR, "svg, #returned-files script") == []
    # The SVG is shown through <img> only, from a data: URL; the HTML is a download.
    images = page.driver.find_elements(By.CSS_SELECTOR, "#returned-files img")
    assert [(image.get_attribute("src") or "")[:26] for image in images] == [
        "data:image/svg+xml;base64,"
    ]
    assert "x.html" in page.text("returned-files")
    try:
        alert = page.driver.switch_to.alert
        raise AssertionError(f"an alert opened: {alert.text}")
    except NoAlertPresentException:
        pass
    page.screenshot("hostile-output")


def test_the_page_sends_every_field_of_the_request_schema_and_shows_the_answer_to_them(
    page: Page, tmp_path: Path
) -> None:
    schema = load_schema("request")
    csv_file = tmp_path / "data.csv"
    csv_file.write_text("a,b\n1,2\n", encoding="utf-8")
    binary_file = tmp_path / "blob.bin"
    binary_file.write_bytes(b"\x00\xff\x01")
    page.set_script(
        "import json\n"
        "def main(input):\n"
        "    with open('data.csv') as f:\n"
        "        rows = f.read().splitlines()\n"
        "    with open('blob.bin', 'rb') as f:\n"
        "        raw = f.read()\n"
        "    with open('out.json', 'w') as f:\n"
        "        json.dump({'n': input['n']}, f)\n"
        "    return {'n': input['n'], 'rows': rows, 'raw': raw, 'seen': {1, 2}}\n"
    )
    page.by_id("options").click()
    page.by_id("input").send_keys('{"n": 4}')
    page.by_id("files").send_keys(f"{csv_file}\n{binary_file}")
    page.by_id("output-files").send_keys("out.json")
    page.by_id("coerce-result").click()
    page.by_id("timeout-seconds").send_keys("5")
    page.by_id("cpu-seconds").send_keys("3")
    page.by_id("memory-mb").send_keys("300")
    assert page.text("files-chosen") == "data.csv (8 bytes), blob.bin (3 bytes)"
    page.run_by_keyboard()

    body = page.posted_body(page.executions()[-1])
    assert set(body) == set(schema["properties"])
    assert list(validator(schema).iter_errors(body)) == []
    assert body["input"] == {"n": 4}
    assert body["files"] == [
        {"path": "data.csv", "content": "a,b\n1,2\n", "encoding": "utf-8"},
        {"path": "blob.bin", "content": "AP8B", "encoding": "base64"},
    ]
    assert (body["output_files"], body["coerce_result"]) == (["out.json"], True)
    assert (body["timeout_seconds"], body["cpu_seconds"], body["memory_mb"]) == (5, 3, 300)

    assert page.text("summary") == "main() returned (200)."
    assert page.text("result") == (
        '{\n  "n": 4,\n  "rows": [\n    "a,b",\n    "1,2"\n  ],\n  "raw": "AP8B",\n'
        '  "seen": [\n    1,\n    2\n  ]\n}'
    )
    assert (page.text("limit-wall"), page.text("limit-cpu"), page.text("limit-memory")) == (
        "5 s",
        "3 s",
        "300 MB",
    )
    assert page.text("returned-files") == "out.json 8 bytes, application/json Download out.json"
    link = page.driver.find_element(By.CSS_SELECTOR, "#returned-files a")
    assert link.get_attribute("download") == "out.json"
    # The limits show the server's defaults and maxima, from GET /runtime.
    assert page.text("timeout-seconds-range") == "(default 10, at most 60)"
    assert page.text("memory-mb-range") == "(default 256, at most 1024)"
    assert page.by_id("cpu-seconds").get_attribute("placeholder") == "10"


def contrast_failures(page: Page) -> list[Any]:
    """Text on the page whose contrast with its background is under 4.5:1 (WCAG's
    relative luminance; the background is the nearest one that is not transparent)."""
    failures: list[Any] = page.driver.execute_script(
        """
        const rgb = (text) => text.match(/[\\d.]+/g).map(Number);
        const linear = (v) => (v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
        const luminance = ([r, g, b]) =>
          0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
        const background = (element) => {
          for (; element; element = element.parentElement) {
            const colour = rgb(getComputedStyle(element).backgroundColor);
            if (colour.length < 4 || colour[3] > 0) return colour;
          }
          return [255, 255, 255];
        };
        const failures = [];
        for (const element of document.querySelectorAll("body *")) {
          const hasText = [...element.childNodes].some(
            (node) => node.nodeType === Node.TEXT_NODE && node.textContent.trim());
          const isControl = element.matches("input, textarea, select, button");
          if ((!hasText && !isControl) || !element.getClientRects().length) continue;
          const fore = luminance(rgb(getComputedStyle(element).color));
          const back = luminance(background(element));
          const ratio = (Math.max(fore, back) + 0.05) / (Math.min(fore, back) + 0.05);
          if (ratio < 4.5) failures.push([element.tagName, element.id, ratio]);
          if (element.placeholder) {
            const hint = luminance(rgb(getComputedStyle(element, "::placeholder").color));
            const hintRatio = (Math.max(hint, back) + 0.05) / (Math.min(hint, back) + 0.05);
            if (hintRatio < 4.5) failures.push([element.tagName, "placeholder", hintRatio]);
          }
        }
        return failures;
        """
    )
    return failures


def test_every_control_is_labelled_and_all_text_has_contrast_of_at_least_4_5(
    page: Page,
) -> None:
    page.run_example("error")  # the failure's colours too
    page.by_id("options").click()
    unlabelled = [
        element.get_attribute("id")
        for element in page.driver.find_elements(
            By.CSS_SELECTOR, "input, textarea, select, button"
        )
        if element.is_displayed() and not element.accessible_name.strip()
    ]
    assert unlabelled == []
    assert page.by_id("script").accessible_name.startswith("Script")
    assert contrast_failures(page) == []
    page.run_example("hello")
    assert contrast_failures(page) == []


def test_the_page_is_usable_on_a_360_px_wide_screen(page: Page) -> None:
    page.driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 360, "height": 780, "deviceScaleFactor": 1, "mobile": True},
    )
    page.driver.refresh()
    page.run_example("chart")
    widths = page.driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth,"
        " Math.max(...[...document.querySelectorAll('main *')]"
        "   .map((e) => e.getBoundingClientRect().right))];"
    )
    scroll_width, client_width, rightmost = widths
    assert client_width == 360
    assert scroll_width <= client_width
    assert rightmost <= client_width
    assert page.text("summary") == "main() returned (200)."
    page.screenshot("narrow-360px")


def test_the_api_key_field_appears_after_a_401_and_the_key_stays_in_this_tab_only(
    keyed_page: Page,
) -> None:
    page = keyed_page
    # GET /runtime answered 401: the field is there before any run.
    assert page.shown("key-box")
    assert "Enter the API key" in page.text("runtime")
    page.run_example("hello")
    assert page.text("summary") == "unauthorized (401)"
    assert page.active_id() == "api-key"
    page.keys(API_KEY)
    page.run_by_keyboard()
    assert page.text("summary") == "main() returned (200)."
    assert page.executions()[-1]["headers"]["X-API-Key"] == API_KEY
    # /runtime is read with the key now: the defaults are known.
    page.wait_for(lambda: page.text("timeout-seconds-range") == "(default 10, at most 60)")

    stored = page.driver.execute_script(
        "return [sessionStorage.getItem('pyexec.api_key'), JSON.stringify(localStorage)];"
    )
    assert stored[0] == API_KEY
    assert API_KEY not in stored[1]
    assert API_KEY not in page.driver.current_url
    assert all(API_KEY not in sent["url"] for sent in page.requests())
    # A reload keeps the script (local storage) and, in this tab, the key.
    page.driver.refresh()
    assert "Hello from the sandbox" in page.value("script")
    assert page.value("api-key") == API_KEY


def hold_the_only_slot(server: LiveServer, seconds: float) -> threading.Thread:
    """A script that sleeps ``seconds`` in the keyed server's one slot, sent from a
    thread; returns once it holds the slot: a probe gets 503 ``overloaded`` while the
    sleeper still waits for its answer. (The slot may still be held for a moment by an
    earlier run's jail being torn down: then the sleeper is refused, and sent again.)"""
    sleeper = {
        "script": f"import time\ndef main():\n    time.sleep({seconds})\n",
        "timeout_seconds": seconds + 10,
    }
    probe = {"script": "def main():\n    return 1\n"}
    for _attempt in range(20):
        sent = threading.Event()
        thread = threading.Thread(
            target=_post_then_wait, args=(server, sleeper, sent), daemon=True
        )
        thread.start()
        # A probe sent before the sleeper's request is in would take the slot itself
        # (and, being torn down, refuse the next sleeper too): it waits until the
        # sleeper's request is sent, and a little for it to be admitted.
        sent.wait(10)
        time.sleep(0.2)
        if _holds_the_slot(server, thread, probe):
            return thread
    raise AssertionError("the sleeper never got the slot")


def _post_then_wait(server: LiveServer, body: dict[str, Any], sent: threading.Event) -> None:
    """POST ``body`` with the API key, set ``sent`` once the request is out, then wait
    for the answer."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=90)
    try:
        connection.request(
            "POST",
            "/execute",
            body=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "X-API-Key": API_KEY},
        )
        sent.set()
        connection.getresponse().read()
    finally:
        sent.set()
        connection.close()


def _holds_the_slot(server: LiveServer, thread: threading.Thread, probe: dict[str, Any]) -> bool:
    wait_until(lambda: not thread.is_alive() or post(server.base, probe)[0] == 503)
    time.sleep(0.3)  # a refusal takes milliseconds; a sleeper that holds the slot, seconds
    return thread.is_alive()


def test_a_busy_server_is_retried_at_most_3_times_and_the_wait_can_be_cancelled(
    keyed_server: LiveServer,
) -> None:
    with browser(keyed_server.base) as page:
        page.by_id("api-key").send_keys(API_KEY)
        sleeper = hold_the_only_slot(keyed_server, 12)
        page.by_id("run").click()
        page.wait_for(lambda: "busy, retrying in" in page.text("status"))
        assert page.text("status").startswith("Server busy, retrying in 1 s (retry 1 of 3)")
        assert page.shown("cancel")
        page.screenshot("busy")
        page.by_id("cancel").click()
        page.wait_for(lambda: page.text("status") == "Cancelled.")
        assert not page.shown("cancel")
        assert len(page.executions()) == 1

        before = page.answers()
        page.by_id("run").click()
        page.wait_for(lambda: page.answers() > before, timeout=20)
        assert page.text("summary") == "overloaded (503)"
        assert len(page.executions()) == 1 + 4  # the first try and 3 retries
        sleeper.join(timeout=30)


def test_a_busy_server_is_retried_until_the_run_gets_its_turn(
    keyed_server: LiveServer,
) -> None:
    with browser(keyed_server.base) as page:
        page.by_id("api-key").send_keys(API_KEY)
        sleeper = hold_the_only_slot(keyed_server, 1.5)
        before = page.answers()
        page.by_id("run").click()
        page.wait_for(lambda: page.answers() > before, timeout=20)
        assert page.text("summary") == "main() returned (200)."
        assert 2 <= len(page.executions()) <= 4
        sleeper.join(timeout=30)


def test_an_unavailable_sandbox_is_shown_as_an_error_at_once() -> None:
    with (
        serve_unhealthy(PYEXEC_SANDBOX_PYTHON="/nonexistent/python") as unavailable,
        browser(unavailable.base) as page,
    ):
        assert "The sandbox is not available on this instance" in page.text("runtime")
        page.run_example("hello")
        assert page.text("summary") == "sandbox_unavailable (503)"
        assert "the sandbox's Python environment is missing" in page.text("failure-message")
        assert len(page.executions()) == 1
        assert page.text("status").startswith("Answered in")
