"""A PNG of the HTML report, taken by headless Chromium (Debian's, driven by Playwright).

The browser is launched with the network features off and every request but the file itself
aborted, so a screenshot never reaches the network either.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from loopscope.errors import ChromiumNotFoundError, ReportError

CHROMIUM = "/usr/bin/chromium"
"""Where Debian's `chromium` package installs the browser."""

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
"""Flags for a quiet, offline, container-friendly headless run."""


def find_chromium(executable: str | Path | None = None) -> Path:
    """The Chromium to use: `executable`, else `/usr/bin/chromium`, else `chromium` on `PATH`."""
    candidates = [Path(executable)] if executable else [Path(CHROMIUM)]
    if executable is None and (found := shutil.which("chromium")):
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ChromiumNotFoundError(
        f"Chromium was not found at {candidates[0]}. Install it with `apt-get install chromium` "
        "or pass the path of a Chromium executable."
    )


def screenshot(
    html_path: str | Path,
    png_path: str | Path,
    width: int = 1400,
    executable: str | Path | None = None,
) -> Path:
    """Render `html_path` in headless Chromium `width` px wide and save the full page as PNG."""
    chromium = find_chromium(executable)
    source = Path(html_path).resolve()
    if not source.is_file():
        raise ReportError(f"There is no report at {source} to screenshot.")
    target = Path(png_path)
    document = source.as_uri()
    # Imported here: Playwright is an optional extra (`loopscope[png]`), and only screenshots
    # need it.
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import Route, sync_playwright
    except ImportError as exc:
        raise ReportError(
            "A PNG needs Playwright for Python: pip install 'loopscope[png]' (or playwright)."
        ) from exc

    def only_the_document(route: Route) -> None:
        if route.request.url == document:
            route.continue_()
        else:
            route.abort()

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True
            )
            try:
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.route("**/*", only_the_document)
                page.goto(document, wait_until="load")
                page.screenshot(path=str(target), full_page=True)
            finally:
                browser.close()
    except PlaywrightError as exc:
        raise ReportError(f"Chromium could not screenshot {source}: {exc.message}") from exc
    return target
