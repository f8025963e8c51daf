"""Augmentation inside cross-validation: the bank is built once, cached, and reused."""

from __future__ import annotations

import pytest

from esclab.config import ConfigError, load_config
from esclab.features import cache
from esclab.train.cv import run_cv

AUGMENT = [
    "augment.waveform={time_stretch: {min_rate: 0.8, max_rate: 1.2, p: 1.0}, white_noise: {min_snr_db: 10, "
    "max_snr_db: 20, p: 0.5}}",
    "augment.spectrogram={time_mask: {num_masks: 1, max_width: 8, p: 0.5}, freq_mask: {num_masks: 1, "
    "max_width: 4, p: 0.5}}",
    "augment.mixup_alpha=0.2",
    "augment.bank_size=2",
    "data.folds=[1]",
]


def test_bank_is_cached_and_reused(tiny_overrides, tmp_path, monkeypatch):
    decoded = []
    read = cache.read_audio
    monkeypatch.setattr(cache, "read_audio", lambda path: decoded.append(path) or read(path))
    cfg = load_config("configs/experiment/paper_cnn.yaml", [*tiny_overrides, *AUGMENT])
    run_cv(cfg, tmp_path / "a", progress=False)  # 12 clips: too few for worker processes, decoded here
    folders = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    assert len(folders) == 3  # clean features + 2 bank variants, each under its own key
    assert len(decoded) == 3 * 12
    decoded.clear()
    run_cv(cfg, tmp_path / "b", progress=False)
    assert not decoded, "recomputed cached features or bank variants"


def test_waveform_transforms_without_bank_are_refused(tiny_overrides):
    with pytest.raises(ConfigError, match="augment.bank_size must be >= 1"):
        load_config("configs/experiment/paper_cnn.yaml",
                    [*tiny_overrides, "augment.waveform={gain: {min_db: -3, max_db: 3}}"])
