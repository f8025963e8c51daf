"""Open a report in headless Debian Chromium: it renders, with no console message, and leaves a screenshot.

Installs ``chromium`` with ``scripts/install_chromium.sh`` when missing; skips only if that fails.
The screenshot is kept in ``tests/artifacts/report_page.png``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from esclab.evaluate.report import ReportOptions, build_report
from tests.integration.test_report import make_tiny_run

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="module")
def chromium() -> str:
    if shutil.which("chromium") is None:
        install = subprocess.run(["bash", str(ROOT / "scripts" / "install_chromium.sh")], capture_output=True,
                                 text=True, check=False)
        if install.returncode != 0 or shutil.which("chromium") is None:
            pytest.skip(f"chromium could not be installed: {install.stderr[-500:]}")
    return shutil.which("chromium")


@pytest.mark.browser
def test_report_renders_without_console_errors(chromium, tmp_path):
    run = make_tiny_run(tmp_path, "run")
    html = build_report(run, options=ReportOptions(robustness_clips=2, max_gallery=2)).html
    ARTIFACTS.mkdir(exist_ok=True)
    png = ARTIFACTS / "report_page.png"
    png.unlink(missing_ok=True)
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "screenshot_report.py"), str(html), str(png)],
                            capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr
    assert png.stat().st_size > 20_000  # a rendered page, not a blank one
