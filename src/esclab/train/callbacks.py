"""Small Lightning callbacks."""

from __future__ import annotations

import random
import time
from typing import Any

import lightning as L
import numpy as np
import torch


class EpochTimer(L.Callback):
    """Records the wall time of each complete training epoch (with its validation pass) in ``times``.

    An epoch cut short (``max_time`` ran out) is not recorded: it would understate the epoch time.
    """

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0
        self._batches = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()
        self._batches = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._batches += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._batches >= trainer.num_training_batches:
            self.times.append(time.perf_counter() - self._start)

    def state_dict(self) -> dict[str, Any]:
        return {"times": list(self.times)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.times = list(state_dict.get("times", []))


class ReseedEveryEpoch(L.Callback):
    """Seeds Python's, NumPy's and torch's global RNGs from ``(seed, epoch)`` as each training epoch starts.

    Dropout, SpecAugment and mixup draw from the global RNGs; seeding them per epoch makes epoch k
    of a fold resumed from ``last.ckpt`` draw what epoch k of an uninterrupted fold draws (the batch
    order and bank variants come from :class:`esclab.data.datamodule.EpochSampler`).
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch_seed = int(np.random.SeedSequence([self.seed, trainer.current_epoch]).generate_state(1)[0])
        random.seed(epoch_seed)
        np.random.seed(epoch_seed)
        torch.manual_seed(epoch_seed)


class FitClock(L.Callback):
    """Wall time spent fitting, summed over every session of a resumed fold (kept in the checkpoint)."""

    def __init__(self) -> None:
        self.before = 0.0
        self._start: float | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    @property
    def total(self) -> float:
        """Seconds of earlier sessions plus this one so far."""
        return self.before + (time.perf_counter() - self._start if self._start is not None else 0.0)

    def state_dict(self) -> dict[str, Any]:
        return {"fit_time_s": self.total}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.before = float(state_dict.get("fit_time_s", 0.0))
