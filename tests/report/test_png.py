"""Finding Chromium for screenshots (the screenshot itself is in `test_browser.py`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopscope.errors import LoopscopeError
from loopscope.report import ChromiumNotFoundError, find_chromium, screenshot


def test_a_missing_chromium_is_an_error_that_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(ChromiumNotFoundError, match="apt-get install chromium") as info:
        find_chromium(tmp_path / "no-chromium")
    assert isinstance(info.value, LoopscopeError)


def test_a_screenshot_with_a_missing_chromium_fails_before_starting_anything(
    tmp_path: Path,
) -> None:
    html = tmp_path / "report.html"
    html.write_text("<!doctype html><p>hi</p>")
    with pytest.raises(ChromiumNotFoundError):
        screenshot(html, tmp_path / "out.png", executable=tmp_path / "no-chromium")
    assert not (tmp_path / "out.png").exists()
