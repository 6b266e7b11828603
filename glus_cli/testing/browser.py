"""Headless Chromium for the report's browser tests and benchmark, driven by Playwright.

It uses the system's browser (Debian's ``chromium`` package), never one Playwright downloads, with a fresh
profile, no network services and no GPU. `chromium_path` is None where there is no browser or no
Playwright, so tests can skip with a reason.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
_CANDIDATES = ("chromium", "chromium-browser", "/usr/bin/chromium")


def chromium_path() -> str | None:
    """The system Chromium (``$GLUS_CHROMIUM`` first), or None when it or Playwright is missing."""
    if importlib.util.find_spec("playwright") is None:
        return None
    for candidate in (os.environ.get("GLUS_CHROMIUM"), *_CANDIDATES):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


def skip_reason() -> str:
    """Why the browser tests cannot run here (for ``pytest.skip``)."""
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install glus-cli[dev])"
    return "no Chromium browser found (apt-get install chromium, or set GLUS_CHROMIUM)"


@contextmanager
def open_browser(viewport: tuple[int, int] = (1280, 900)) -> Iterator[BrowserContext]:
    """A headless Chromium context with a fresh, temporary profile, closed on exit.

    Raises:
        RuntimeError: there is no browser (see `chromium_path`).
    """
    executable = chromium_path()
    if executable is None:
        raise RuntimeError(skip_reason())
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="glus-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            headless=True,
            args=list(CHROMIUM_ARGS),
            viewport={"width": viewport[0], "height": viewport[1]},
        )
        try:
            yield context
        finally:
            context.close()


@dataclass
class PageProblems:
    """Console errors, uncaught exceptions and failed requests seen by a page."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        """Record `page`'s problems from now on."""
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on(
            "requestfailed", lambda request: self.failed_requests.append(f"{request.url}: {request.failure}")
        )

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def all(self) -> list[str]:
        """Every problem, one line each."""
        return [*self.console_errors, *self.page_errors, *self.failed_requests]
