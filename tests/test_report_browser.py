"""The page in a real headless Chromium (installed by .ci/run): no console error, tables and images
rendered, a screenshot written. Skipped, saying why, only where no Chromium is installed."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import report
from report.browser import check_page, find_chromium
from test_report_fixtures import write_suite

pytestmark = pytest.mark.skipif(find_chromium() is None,
                                reason="chromium not installed (CI installs it: apt-get install chromium)")


def test_page_renders_without_console_errors(tmp_path):
    page = report.build("mini", str(write_suite(tmp_path)))
    result = check_page(page, page.with_name("screenshot.png"))
    assert result.errors == []
    probe = result.probe
    assert probe["claims"] and probe["title"] == "onecycle-bench report: mini"
    assert probe["visibleTables"] >= 6
    assert probe["images"] >= 4 and probe["loadedImages"] == probe["images"]
    png = result.screenshot.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 50_000
    if artifacts := os.environ.get("REPORT_SCREENSHOT_DIR"):  # CI keeps the screenshot as an artifact
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(result.screenshot, Path(artifacts) / "report-mini.png")


def test_checker_catches_script_errors_and_broken_images(tmp_path):
    """The check above could fail: a page with an exception, a console.error and a missing image."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><head><title>broken</title></head><body><table><tr><td>x</td>"
                    "</tr></table><img src='missing.png' alt='missing'>"
                    "<script>console.error('bad thing'); undefinedFunction();</script></body></html>")
    result = check_page(page)
    joined = " ".join(result.errors)
    assert "bad thing" in joined and "undefinedFunction" in joined and "missing.png" in joined
    assert result.probe["loadedImages"] == 0 and result.screenshot is None
