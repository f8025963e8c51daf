"""Robustness counts: an infinite SNR adds no noise, so it scores the clean accuracy exactly."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from esclab.bundle import load_bundle, save_bundle
from esclab.config import AudioConfig, FeatureConfig
from esclab.evaluate.robustness import count_correct, robustness_counts
from esclab.models import create_model
from tests.conftest import tone


@pytest.fixture
def bundle(tmp_path: Path):
    torch.manual_seed(0)
    model = create_model("paper_cnn", num_classes=3, channels=[4, 8, 8], dense_units=[16], input_size=[32, 60])
    features = FeatureConfig(n_mels=32, n_fft=256, hop_length=128, frames=60)
    path = save_bundle(tmp_path / "model.ckpt", model, "paper_cnn", {"channels": [4, 8, 8], "dense_units": [16]},
                       ["a", "b", "c"], AudioConfig(sample_rate=8000, duration=1.0), features)
    return load_bundle(path)


@pytest.fixture
def clips(bundle) -> tuple[np.ndarray, np.ndarray]:
    """Eight tones, labelled so that the clean accuracy is exactly one half."""
    waves = np.stack([tone(200 + 150 * i, sr=8000, phase=i) for i in range(8)])
    pred = bundle.logits(torch.from_numpy(waves)).argmax(dim=1).numpy()
    return waves, np.where(np.arange(8) < 4, pred, (pred + 1) % 3)


def test_infinite_snr_equals_clean_accuracy(bundle, clips):
    waves, target = clips
    clean = count_correct(bundle, waves, target, None, np.random.default_rng(0))
    counts = robustness_counts(bundle, waves, target, snrs_db=(math.inf, 0.0), rates=(1.0,), seed=1)
    assert clean == 4
    assert counts["n"] == 8
    assert counts["noise"][0] == clean


def test_counts_are_seeded(bundle, clips):
    waves, target = clips
    runs = [robustness_counts(bundle, waves, target, snrs_db=(0.0, -10.0), rates=(0.8,), seed=5) for _ in range(2)]
    assert runs[0] == runs[1]
