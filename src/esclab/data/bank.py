"""Banks of augmented log-mels: K precomputed variants per clip for the expensive waveform transforms.

Time stretch and pitch shift cost far more than a training step, so instead of running
them online, each clip gets ``augment.bank_size`` variants computed once and cached like
the clean features (the cache key includes the transform and the variant index); training
draws the clean clip or one of its variants per example.
"""

from __future__ import annotations

import hashlib

import numpy as np

from esclab.augment import build_waveform_augment
from esclab.config import ExperimentConfig
from esclab.data.table import ClipTable
from esclab.features.cache import FeatureCache


def clip_seed(clip_id: str, variant: int, seed: int) -> int:
    """A stable seed per (clip, variant, run seed), independent of clip order."""
    return int.from_bytes(hashlib.sha1(f"{clip_id}|{variant}|{seed}".encode()).digest()[:8], "little")


def bank_variants(cfg: ExperimentConfig) -> list[str]:
    """The feature-cache variant name of each of the ``augment.bank_size`` bank variants (empty without a bank)."""
    augment = build_waveform_augment(cfg.augment, cfg.audio.sample_rate)
    if augment is None:
        return []
    return [f"{augment!r}|k={k}|seed={cfg.train.seed}" for k in range(cfg.augment.bank_size)]


def load_bank(cfg: ExperimentConfig, table: ClipTable, progress: bool = True) -> np.ndarray | None:
    """``(K, N, M, T)`` augmented log-mels for the clips of ``table``, or ``None`` without a bank."""
    augment = build_waveform_augment(cfg.augment, cfg.audio.sample_rate)
    if cfg.augment.bank_size == 0 or augment is None:
        return None
    paths, ids = table.clips["path"].tolist(), table.clips["clip_id"].tolist()
    variants = []
    for k in range(cfg.augment.bank_size):
        def transform(wave: np.ndarray, clip_id: str, k: int = k) -> np.ndarray:
            return augment(wave, np.random.default_rng(clip_seed(clip_id, k, cfg.train.seed))).astype(np.float32)

        cache = FeatureCache(cfg.audio, cfg.features, variant=bank_variants(cfg)[k], wave_transform=transform)
        specs, bad = cache.load(paths, ids, progress=progress, desc=f"augment bank {k + 1}/{cfg.augment.bank_size}")
        if bad:
            raise RuntimeError(f"clips decoded for the clean features failed in the bank: {sorted(bad)[:3]}")
        variants.append(specs)
    return np.stack(variants)
