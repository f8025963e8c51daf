"""Accuracy under white noise and speed changes, with the training augmentations frozen at fixed values.

Each condition transforms the test fold's waveforms with
``AddWhiteNoise(...).freeze(snr_db=s)`` or ``TimeStretch(...).freeze(rate=r)`` and classifies
them with the fold's bundle (its own front end and model). An infinite SNR adds zero noise,
so the first noise point is the clean accuracy by construction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from esclab.augment import AddWhiteNoise, TimeStretch, Transform
from esclab.bundle import Bundle

SNRS_DB: tuple[float, ...] = (math.inf, 20.0, 10.0, 5.0, 0.0)
RATES: tuple[float, ...] = (0.8, 0.9, 1.0, 1.1, 1.2)


def count_correct(bundle: Bundle, waves: np.ndarray, target: np.ndarray, transform: Transform | None,
                  rng: np.random.Generator, batch_size: int = 32) -> int:
    """How many of ``(N, samples)`` ``waves`` the bundle classifies as ``target`` after ``transform``."""
    correct = 0
    for start in range(0, len(waves), batch_size):
        batch = waves[start:start + batch_size]
        if transform is not None:
            batch = np.stack([transform(w, rng) for w in batch])
        pred = bundle.logits(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))).argmax(dim=1)
        correct += int((pred.numpy() == target[start:start + batch_size]).sum())
    return correct


def robustness_counts(bundle: Bundle, waves: np.ndarray, target: np.ndarray, snrs_db: Sequence[float] = SNRS_DB,
                      rates: Sequence[float] = RATES, seed: int = 0) -> dict[str, Any]:
    """Correct counts per noise level and per speed factor on one fold's clips.

    Args:
        bundle: the fold's model and front end.
        waves: ``(N, samples)`` test waveforms at ``bundle.audio.sample_rate``.
        target: ``(N,)`` true classes.
        snrs_db: white-noise SNRs in dB (``math.inf``: no noise).
        rates: speed factors (> 1 faster).
        seed: seeds the noise draws.

    Returns:
        ``{"n": N, "noise": [correct per SNR], "speed": [correct per rate]}``.
    """
    rng = np.random.default_rng(seed)
    noise = AddWhiteNoise(p=1.0)
    stretch = TimeStretch(bundle.audio.sample_rate, p=1.0)
    return {
        "n": len(waves),
        "noise": [count_correct(bundle, waves, target, noise.freeze(snr_db=s), rng) for s in snrs_db],
        "speed": [count_correct(bundle, waves, target, stretch.freeze(rate=r), rng) for r in rates],
    }


def snr_label(snr_db: float) -> str:
    """``"clean"`` for an infinite SNR, else ``"20 dB"``."""
    return "clean" if math.isinf(snr_db) else f"{snr_db:g} dB"
