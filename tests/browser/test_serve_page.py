"""Headless Debian chromium drives the served page: upload a clip, the top class appears.

The server is ``esclab serve`` in a subprocess on 127.0.0.1 and a free port; the screenshot
is kept in ``tests/artifacts/serve_page.png``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from esclab.inference import Predictor
from tests.unit.test_inference import write_clip, write_tiny_bundle

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium (scripts/install_chromium.sh)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return write_tiny_bundle(tmp_path / "model.ckpt")


@pytest.fixture
def server(bundle: Path, tmp_path: Path) -> Iterator[str]:
    """``esclab serve`` on a free port; yields its URL once ``/api/health`` answers, then stops it."""
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "esclab.cli", "serve", str(bundle), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited: {(tmp_path / 'server.log').read_text()}")
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not start: {(tmp_path / 'server.log').read_text()}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_upload_shows_the_top_class(server: str, bundle: Path, tmp_path: Path):
    clip = write_clip(tmp_path / "tone.wav", seconds=1.0, freq=660.0)
    expected = Predictor.from_checkpoint(bundle).predict_file(clip).top_k[0].label
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=str(CHROMIUM),
                                                         headless=True, args=CHROMIUM_FLAGS)
        try:
            page = context.new_page()
            page.goto(server)
            sync_api.expect(page.locator("#model")).to_contain_text("paper_cnn")
            page.set_input_files("#file", str(clip))
            top = page.locator("#top-class b")
            sync_api.expect(top).to_have_text(expected, timeout=30_000)
            sync_api.expect(page.locator("#top-k li")).to_have_count(3)
            page.wait_for_function("document.getElementById('heatmap').complete"
                                   " && document.getElementById('heatmap').naturalWidth > 0")
            page.screenshot(path=str(ARTIFACTS / "serve_page.png"), full_page=True)
        finally:
            context.close()
