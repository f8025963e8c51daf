"""The page's Listen button in headless Debian chromium, its microphone a fake device playing a known sound.

A tiny paper CNN is trained here (``run_cv``, two folds) on three synthetic sounds: a 300 Hz tone, a
2 kHz tone and white noise. ``esclab serve`` serves the run (``test_serve_page``'s ``server`` fixture,
over this module's ``bundle``); chromium's fake capture device loops a 2 kHz tone, and within 10 s of
pressing Listen the page must name ``high_tone``; with the microphone refused it says so. The screenshot is kept in ``tests/artifacts/live_listen.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from esclab.config import load_config
from esclab.inference import Predictor
from esclab.train.cv import run_cv
from tests.browser.test_serve_page import ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS, server, sync_api  # noqa: F401
from tests.conftest import TINY_OVERRIDES, tone

SOUNDS = {"low_tone": 300.0, "high_tone": 2000.0, "noise": None}  # class -> tone frequency (None: white noise)
PLAYED = "high_tone"
FAKE_CAPTURE = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium (scripts/install_chromium.sh)"),
]


def sound(label: str, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One example of a class: the tone at a random level and phase over a noise floor from -80 to -30 dB,
    or noise alone."""
    level, floor = rng.uniform(0.05, 0.6), 10 ** rng.uniform(-4, -1.5)
    freq = SOUNDS[label]
    wave = rng.standard_normal(int(seconds * sr)) / 3 if freq is None else tone(
        freq * rng.uniform(0.97, 1.03), seconds, sr, phase=rng.uniform(0, 6))
    return (level * wave + floor * rng.standard_normal(len(wave))).astype(np.float32)


def write_sounds(root: Path, per_fold: int = 4, sr: int = 8000) -> Path:
    """Two folds of ``per_fold`` 1 s clips per class; returns the CSV."""
    rng, rows = np.random.default_rng(0), []
    root.mkdir(parents=True)
    for label in SOUNDS:
        for fold in (1, 2):
            for i in range(per_fold):
                name = f"{label}_{fold}_{i}.wav"
                sf.write(root / name, sound(label, 1.0, sr, rng), sr)
                rows.append({"path": name, "label": label, "fold": fold})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root / "labels.csv"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """The run folder of a tiny paper CNN trained on :data:`SOUNDS` (``esclab serve`` takes its best fold)."""
    csv = write_sounds(tmp_path / "sounds")
    # false_rejection=0: nothing rejected, whatever the few validation clips say
    cfg = load_config("paper_cnn", [*TINY_OVERRIDES, f"data.csv={csv}", f"features.cache_dir={tmp_path / 'cache'}",
                                    "train.max_epochs=8", "train.lr=3e-3", "train.false_rejection=0"])
    return run_cv(cfg, tmp_path / "run", progress=False).out_dir


def clean(label: str, seconds: float = 4.0, sr: int = 48000) -> np.ndarray:
    """What the fake microphone plays for a class: the plain tone, or white noise."""
    freq = SOUNDS[label]
    wave = np.random.default_rng(1).standard_normal(int(seconds * sr)) / 3 if freq is None else tone(freq, seconds, sr)
    return (0.3 * wave).astype(np.float32)


def test_listen_names_the_sound_the_microphone_hears(server: str, bundle: Path, tmp_path: Path):  # noqa: F811
    predictor = Predictor.from_checkpoint(bundle)  # the model knows every clean sound apart, not only the one played
    assert [predictor.predict_wave(clean(label), 48000).top_k[0].label for label in SOUNDS] == [*SOUNDS]
    played = tmp_path / "played.wav"  # chromium's fake capture loops a 16-bit PCM wav
    sf.write(played, clean(PLAYED), 48000, subtype="PCM_16")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
            args=[*CHROMIUM_FLAGS, *FAKE_CAPTURE, f"--use-file-for-fake-audio-capture={played}"])
        try:
            page = context.new_page()
            page.goto(server)
            sync_api.expect(page.locator("#listen-status")).to_contain_text("Every 1 s")
            page.click("#listen")
            sync_api.expect(page.locator("#live-top b")).to_have_text(PLAYED, timeout=10_000)
            sync_api.expect(page.locator("#listen")).to_have_text("Stop")
            sync_api.expect(page.locator("#timeline .cell").first).to_be_visible()
            page.wait_for_timeout(2500)  # a few more answers on the timeline for the screenshot
            page.screenshot(path=str(ARTIFACTS / "live_listen.png"), full_page=True)
            sync_api.expect(page.locator("#listen-error")).to_be_hidden()
            page.click("#listen")
            sync_api.expect(page.locator("#listen")).to_have_text("Listen")
        finally:
            context.close()
        refused = pw.chromium.launch_persistent_context(  # a microphone the user does not allow
            str(tmp_path / "profile_refused"), executable_path=str(CHROMIUM), headless=True,
            args=[*CHROMIUM_FLAGS, "--use-fake-device-for-media-stream", "--deny-permission-prompts"])
        try:
            page = refused.new_page()
            page.goto(server)
            page.click("#listen")
            sync_api.expect(page.locator("#listen-error")).to_contain_text("Microphone access was refused")
            sync_api.expect(page.locator("#listen")).to_have_text("Listen")
        finally:
            refused.close()
