"""Open an esclab HTML page in headless Chromium, save a screenshot, and fail on any console message.

Usage: ``python scripts/screenshot_report.py runs/RUN/report.html shot.png [--height 3000]``

Debian's ``chromium`` (``scripts/install_chromium.sh``) logs every console message, errors
included, as an ``INFO:CONSOLE`` line on stderr; our pages log nothing, so any such line is a
failure (a script error, a resource that did not load). Exit status: 0 clean, 1 console
messages, 2 Chromium missing or failed.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
CONSOLE = re.compile(r":CONSOLE(?::\d+)?\]\s*(.*)")


def screenshot(page: Path, png: Path, width: int = 1400, height: int = 3000, timeout: float = 120) -> list[str]:
    """Screenshot ``page`` into ``png``; returns the console messages Chromium logged.

    Raises:
        FileNotFoundError: no ``chromium`` on the PATH.
        RuntimeError: Chromium failed or wrote no screenshot.
    """
    browser = shutil.which("chromium")
    if browser is None:
        raise FileNotFoundError("chromium is not installed (run scripts/install_chromium.sh)")
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={png.resolve()}",
                                 f"--window-size={width},{height}", page.resolve().as_uri()],
                                capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0 or not png.is_file():
        raise RuntimeError(f"chromium exited {result.returncode} without a screenshot:\n{result.stderr[-2000:]}")
    return [m.group(1) for line in result.stderr.splitlines() if (m := CONSOLE.search(line))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=3000)
    args = parser.parse_args()
    try:
        messages = screenshot(args.page, args.png, args.width, args.height)
    except (FileNotFoundError, RuntimeError, subprocess.TimeoutExpired) as err:
        print(f"screenshot_report: {err}", file=sys.stderr)
        return 2
    for message in messages:
        print(f"console: {message}", file=sys.stderr)
    print(f"{args.png}: {len(messages)} console message(s)")
    return 1 if messages else 0


if __name__ == "__main__":
    sys.exit(main())
