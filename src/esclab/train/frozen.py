"""Frozen leading layers run once: their outputs are cached like features.

The seed's protocol fine-tunes the last layers of a pretrained network and freezes the first. A
frozen layer in eval mode is a fixed function of its input, so its output for a clip (and for each
of the clip's augmented bank variants) is computed once per run instead of once per epoch. For the
AudioSet MobileNets the first five layers hold under 1 % of the weights but most of a training
step's time: training from their cached output makes a fine-tuning epoch several times cheaper.
Online augmentations (time roll, masks, mixup) then act on these feature maps, fresh every epoch.

The cache lives beside the feature cache (``CACHE/frozen/<key>.npy``); its key covers everything
the values depend on: the feature cache key (and the bank variant), the model and its options, the
weights' sha256, the clips and this module's format.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from esclab.config import ExperimentConfig
from esclab.data.bank import bank_variants
from esclab.data.prepare import PreparedData
from esclab.features.cache import cache_key, file_id
from esclab.fsutil import atomic_write
from esclab.models import EscModel, create_model, prepare_for_inference
from esclab.progress import track
from esclab.provenance import source_fingerprint
from esclab.train.probe import weights_fingerprint

log = logging.getLogger(__name__)

FROZEN_FORMAT = 1
BATCH = 32


def frozen_blocks_of(cfg: ExperimentConfig) -> int:
    """How many leading layers the run's model freezes (``model.kwargs.frozen_blocks``, default 0)."""
    return int(cfg.model.kwargs.get("frozen_blocks", 0) or 0)


def trains_from_cache(cfg: ExperimentConfig) -> bool:
    """Whether training reads cached outputs of frozen layers (``train.cache_frozen`` and frozen layers)."""
    return cfg.train.cache_frozen and frozen_blocks_of(cfg) > 0


def frozen_key(cfg: ExperimentConfig, weights_sha256: str, clip_ids: list[str], file_ids: list[str],
               variant: str) -> str:
    """Hash of everything a cached frozen output depends on (``variant``: ``clean`` or a bank variant)."""
    blob = json.dumps({"format": FROZEN_FORMAT, "features": cache_key(cfg.audio, cfg.features, variant),
                       "model": cfg.model.name, "kwargs": cfg.model.kwargs, "weights": weights_sha256,
                       "code": source_fingerprint("esclab.models", "esclab.train.frozen"),
                       "clips": [f"{c}-{f}" for c, f in zip(clip_ids, file_ids, strict=True)]},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_frozen(model: EscModel, specs: np.ndarray, progress: bool = False, desc: str = "frozen layers") -> np.ndarray:
    """``(N, M, T)`` log-mels -> ``(N, ...)`` outputs of ``model``'s frozen layers (eval, fp32).

    Runs a copy prepared for inference (BatchNorms folded: the same values up to float rounding);
    ``model`` is unchanged.
    """
    fast = prepare_for_inference(copy.deepcopy(model))
    out = []
    with torch.inference_mode():
        for start in track(range(0, len(specs), BATCH), desc=desc, enabled=progress):
            batch = torch.as_tensor(specs[start:start + BATCH], dtype=torch.float32).unsqueeze(1)
            out.append(fast.forward_frozen(batch).float().contiguous().numpy())
    return np.concatenate(out)


def load_frozen_outputs(cfg: ExperimentConfig, model: EscModel, weights_sha256: str, specs: np.ndarray,
                        bank: np.ndarray | None, bank_variants: list[str], clip_ids: list[str],
                        file_ids: list[str], progress: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """The frozen layers' outputs for the clean clips and for each bank variant, cached on disk.

    Args:
        cfg: the run's config (its feature cache folder decides where the cache lives).
        model: the pretrained model with ``frozen_blocks`` > 0.
        weights_sha256: the sha256 of its pretrained weights (part of the key).
        specs: ``(N, M, T)`` clean log-mels.
        bank: ``(K, N, M, T)`` augmented variants, or ``None``.
        bank_variants: the K variant names the bank's feature cache used (part of each key).
        clip_ids, file_ids: the clips, in order (part of the key).

    Returns:
        ``(N, ...)`` clean outputs and ``(K, N, ...)`` bank outputs (``None`` without a bank).
    """
    folder = Path(cfg.features.cache_dir).expanduser().parent / "frozen"
    folder.mkdir(parents=True, exist_ok=True)

    def one(values: np.ndarray, variant: str, desc: str) -> np.ndarray:
        path = folder / f"{frozen_key(cfg, weights_sha256, clip_ids, file_ids, variant)}.npy"
        if path.is_file():
            try:
                cached = np.load(path, allow_pickle=False)
                if len(cached) == len(values):
                    return cached
            except (OSError, ValueError) as err:
                log.warning("corrupt frozen-layer cache %s (%s): rebuilding it", path, err)
        start = time.perf_counter()
        outputs = run_frozen(model, values, progress=progress, desc=desc)
        log.info("%s: %d clips through %d frozen layers in %.1f s", desc, len(values), model.frozen_blocks,
                 time.perf_counter() - start)
        atomic_write(path, lambda fh: np.save(fh, outputs, allow_pickle=False))
        return outputs

    clean = one(specs, "clean", "frozen layers (clean)")
    if bank is None:
        return clean, None
    variants = [one(bank[k], name, f"frozen layers (bank {k + 1}/{len(bank)})") for k, name in enumerate(bank_variants)]
    return clean, np.stack(variants)


def attach_frozen_outputs(cfg: ExperimentConfig, data: PreparedData, num_classes: int, progress: bool = True) -> None:
    """Set ``data.frozen`` / ``data.frozen_bank`` for a model with frozen layers, and drop the log-mel bank
    (training reads the frozen outputs instead; the clean log-mels stay for what reads them)."""
    model = create_model(cfg.model.name, num_classes=num_classes, pretrained=cfg.model.pretrained,
                        pretrained_partial=cfg.model.pretrained_partial,
                         input_size=cfg.features.input_size, **cfg.model.kwargs)
    paths = data.table.clips["path"].tolist()
    data.frozen, data.frozen_bank = load_frozen_outputs(
        cfg, model, weights_fingerprint(cfg.model.pretrained), data.specs, data.bank, bank_variants(cfg),
        data.table.clips["clip_id"].tolist(), [file_id(p) for p in paths], progress=progress)
    data.bank = None
