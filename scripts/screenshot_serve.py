"""Screenshot the served page after one clip is dropped on it through its own file input.

Usage: ``python scripts/screenshot_serve.py RUN_DIR CLIP docs/screenshots/serve_page.png``

Starts ``esclab serve RUN_DIR`` on a free loopback port, drives Debian's chromium with Playwright
(``tests/browser/test_serve_page.py`` does the same with a test model), waits for the top class and the
heatmap, saves a full-page PNG in 256 colours (the docs folder has a size budget) and stops the server.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image
from playwright.sync_api import expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def save_256_colours(png: Path) -> None:
    """Rewrite a screenshot as a 256-colour PNG (a few hundred kB instead of megabytes)."""
    Image.open(png).convert("RGB").quantize(256).save(png, optimize=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"esclab serve did not answer at {url}")


def screenshot(run: Path, clip: Path, png: Path, width: int = 1100) -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "esclab.cli", "serve", str(run), "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url, server)
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
            context = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                             args=FLAGS, viewport={"width": width, "height": 900})
            page = context.new_page()
            page.goto(url)
            expect(page.locator("#model")).not_to_contain_text("loading")
            page.set_input_files("#file", str(clip))
            expect(page.locator("#top-class b")).not_to_be_empty(timeout=60_000)
            page.wait_for_function("document.getElementById('heatmap').complete"
                                   " && document.getElementById('heatmap').naturalWidth > 0")
            page.screenshot(path=str(png), full_page=True)
            context.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
    save_256_colours(png)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="run folder or bundle")
    parser.add_argument("clip", type=Path, help="audio file to drop on the page")
    parser.add_argument("png", type=Path)
    args = parser.parse_args()
    screenshot(args.run, args.clip, args.png)
    print(f"{args.png}: {args.png.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
