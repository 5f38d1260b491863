"""The browser the HTML tests drive: Debian's chromium (scripts/install-test-browser.sh), headless, through
Playwright (its maintained client, pointed at that binary: Playwright's own browser downloads are not reachable
here)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _find_chromium() -> str | None:
    for candidate in (os.environ.get("HARNESS_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


class Browser:
    """Playwright driving Debian's chromium (not a downloaded build: the registry is all this machine
    reaches): one page per look, its console problems, requests and chart boxes recorded."""

    def __init__(self, binary: str):
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        self._browser = self._pw.chromium.launch(executable_path=binary, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])

    def _page(self, width: int):
        page = self._browser.new_page(viewport={"width": width, "height": 900}, device_scale_factor=1)
        problems: list[str] = []
        requests: list[str] = []
        page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}")
                if m.type in ("error", "assert", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"exception: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        return page, problems, requests

    def open(self, url: str, width: int = 1360) -> dict:
        """Load a page; returns its console problems, network requests and chart boxes."""
        page, problems, requests = self._page(width)
        page.goto(url, wait_until="load")
        page.evaluate("document.fonts.ready.then(() => new Promise(r => requestAnimationFrame(() => r(1))))")
        charts = page.evaluate("""[...document.querySelectorAll('svg.chart')].map(s => {
            const r = s.getBoundingClientRect();
            return {title: s.querySelector(':scope > title')?.textContent, width: r.width, height: r.height,
                    marks: s.querySelectorAll('rect, circle, polyline').length};
        })""")
        page.close()
        return {"problems": problems, "requests": [u for u in requests if u != url], "charts": charts}

    def screenshot(self, url: str, path: Path, width: int = 1360) -> tuple[int, int]:
        """Full-page PNG of `url`; returns its pixel size."""
        page, _, _ = self._page(width)
        page.goto(url, wait_until="load")
        page.evaluate("document.fonts.ready.then(() => 1)")
        page.screenshot(path=str(path), full_page=True)
        page.close()
        return struct.unpack(">II", path.read_bytes()[16:24])

    def page(self, width: int = 1360):
        """A page to drive by hand, and the list its console problems and uncaught exceptions go to."""
        page, problems, _ = self._page(width)
        return page, problems

    def close(self) -> None:
        self._browser.close()
        self._pw.stop()


@pytest.fixture(scope="module")
def browser():
    binary = _find_chromium()
    if binary is None:
        subprocess.run(["bash", str(ROOT / "scripts" / "install-test-browser.sh")], timeout=600, check=False)
        binary = _find_chromium()
    if binary is None:
        pytest.skip("no Chromium: /usr/bin/chromium is missing and scripts/install-test-browser.sh could not "
                    "install Debian's chromium (needs root and apt)")
    b = Browser(binary)
    try:
        yield b
    finally:
        b.close()
