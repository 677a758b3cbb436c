"""Headless Chromium (Debian's package) driven by Playwright, for the tests that look at pages as a user does.

Playwright never downloads a browser here: it launches /usr/bin/chromium. Where that browser or the
playwright package is absent, the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

# Without the background-networking flags Chromium keeps dialling Google's hosts, which this closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class BrowserPage:
    """A Playwright page plus every console error and uncaught page error it saw."""

    page: object
    console_errors: list[str] = field(default_factory=list)


@contextmanager
def open_browser():
    """Yields a function that opens a fresh page (collecting console errors); closes everything on exit."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("Chromium is not installed (make system-deps installs Debian's chromium package).")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            def new_page(width: int = 1400, height: int = 1000) -> BrowserPage:
                page = browser.new_page(viewport={"width": width, "height": height})
                seen = BrowserPage(page)
                page.on("console", lambda msg: seen.console_errors.append(msg.text) if msg.type == "error" else None)
                page.on("pageerror", lambda exc: seen.console_errors.append(str(exc)))
                return seen

            yield new_page
        finally:
            browser.close()
