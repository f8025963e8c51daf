"""Shared fixtures: synthetic audio written at test time, and the tiny real ESC-50 fixture."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DATA = Path(__file__).parent / "data"
#: The EfficientAT mn04 AudioSet weights in the shared folder beside the checkout (absent elsewhere).
SHARED_MN04 = Path(__file__).resolve().parents[1].parent / "shared" / "pretrained" / "mn04_as_mAP_432.pt"


def tone(freq: float, seconds: float = 1.0, sr: int = 8000, amp: float = 0.5, phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


@pytest.fixture(scope="session")
def shared_mn04() -> Path:
    """The shared mn04 weight file (:data:`SHARED_MN04`); a test asking for it is skipped where it is absent."""
    if not SHARED_MN04.is_file():
        pytest.skip(f"shared weight file {SHARED_MN04} is not on this disk")
    return SHARED_MN04


@pytest.fixture
def esc50_mini() -> Path:
    """9 real ESC-50 clips (dog, rooster, pig x folds 1-3) as Ogg, metadata naming .wav files."""
    return DATA / "esc50_mini"


def write_tone_dataset(root: Path, classes: int = 3, folds: int = 2, per_fold: int = 2, sr: int = 8000,
                       seconds: float = 1.0) -> Path:
    """A folder dataset of noisy tones, one pitch per class; returns the CSV path."""
    rng = np.random.default_rng(0)
    rows = []
    (root / "audio").mkdir(parents=True, exist_ok=True)
    for c in range(classes):
        for f in range(1, folds + 1):
            for i in range(per_fold):
                wave = tone(300 * (c + 1), seconds, sr, phase=rng.uniform(0, 6))
                wave += 0.05 * rng.standard_normal(len(wave)).astype(np.float32)
                name = f"audio/c{c}_f{f}_{i}.wav"
                sf.write(root / name, wave, sr)
                rows.append({"path": name, "label": f"class_{c}", "fold": f})
    csv = root / "labels.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


@pytest.fixture
def tone_dataset(tmp_path: Path) -> Path:
    return write_tone_dataset(tmp_path / "tones")


TINY_OVERRIDES = [
    "data.dataset=folder",
    "data.folds=[1,2]",
    "audio.sample_rate=8000",
    "audio.duration=1.0",
    "features.n_mels=32",
    "features.n_fft=256",
    "features.hop_length=128",
    "features.frames=60",
    "model.name=paper_cnn",
    "model.kwargs.channels=[8,16,16]",
    "model.kwargs.dense_units=[32]",
    "train.batch_size=4",
    "train.max_epochs=2",
    "train.precision=32",
    "train.progress_bar=false",
    "data.val_fraction=0.25",
]


@pytest.fixture
def tiny_overrides(tone_dataset: Path, tmp_path: Path) -> list[str]:
    """Overrides that make any experiment a seconds-long run on the tone dataset."""
    return [*TINY_OVERRIDES, f"data.csv={tone_dataset}", f"features.cache_dir={tmp_path / 'cache'}"]


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained 3-class bundle (:func:`tests.unit.test_inference.write_tiny_bundle`), one per test module."""
    from tests.unit.test_inference import write_tiny_bundle

    return write_tiny_bundle(tmp_path_factory.mktemp("bundle") / "model.ckpt")
