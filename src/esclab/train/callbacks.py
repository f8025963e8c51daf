"""Small Lightning callbacks."""

from __future__ import annotations

import logging
import random
import time
from typing import Any

import lightning as L
import numpy as np
import torch

from esclab.progress import format_duration

log = logging.getLogger(__name__)


class EpochTimer(L.Callback):
    """Records the wall time of each complete training epoch (with its validation pass) in ``times``.

    An epoch cut short (``max_time`` ran out) is not recorded: it would understate the epoch time.
    """

    def __init__(self) -> None:
        self.times: list[float] = []
        self.epoch_start = 0.0
        self._batches = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_start = time.perf_counter()
        self._batches = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._batches += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._batches >= trainer.num_training_batches:
            self.times.append(time.perf_counter() - self.epoch_start)

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


def _metric(metrics: dict[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    return float(value) if value is not None else None


def fold_label(fold: int, position: int, n_folds: int) -> str:
    """``fold 2/5``, or ``fold 3 (1/2)`` when the run trains only some folds."""
    return f"fold {fold}/{n_folds}" if fold == position else f"fold {fold} ({position}/{n_folds})"


def epoch_line(fold: str, epoch: tuple[int, int], metrics: dict[str, Any], fold_elapsed: float,
               epoch_time: float, folds_after: int) -> str:
    """One line about a finished epoch.

    ``fold 2/5 · epoch 7/30 · train loss 1.234 acc 0.612 · val loss 1.456 acc 0.550 · fold 2m10s, ETA 7m30s
    · run ETA 41m10s``: the fold's ETA is its remaining epochs at ``epoch_time`` each, the run's adds
    ``folds_after`` whole folds of ``epoch[1]`` epochs.

    Args:
        fold: :func:`fold_label`.
        epoch: (epochs finished in this fold, 1-based; maximum epochs).
        metrics: ``train_loss``, ``train_acc`` and, with a validation split, ``val_loss``, ``val_acc``.
        fold_elapsed: seconds this fold has trained in this session.
        epoch_time: typical seconds per epoch.
        folds_after: folds still to train after this one.
    """
    parts = [fold, f"epoch {epoch[0]}/{epoch[1]}"]
    for split in ("train", "val"):
        loss, acc = _metric(metrics, f"{split}_loss"), _metric(metrics, f"{split}_acc")
        if loss is not None or acc is not None:
            parts.append(" ".join([split] + ([f"loss {loss:.3f}"] if loss is not None else [])
                                  + ([f"acc {acc:.3f}"] if acc is not None else [])))
    fold_left = max(0, epoch[1] - epoch[0]) * epoch_time
    parts.append(f"fold {format_duration(fold_elapsed)}, ETA {format_duration(fold_left)}")
    if folds_after:
        parts.append(f"run ETA {format_duration(fold_left + folds_after * epoch[1] * epoch_time)}")
    return " · ".join(parts)


class EpochProgress(L.Callback):
    """Logs :func:`epoch_line` after every epoch (validation included), for runs without Lightning's bar.

    Args:
        timer: the fold's :class:`EpochTimer`, placed before this callback (its epoch times, resumed ones
            included, give the ETA).
        fold: :func:`fold_label`.
        folds_after: folds still to train after this one (for the run's ETA).
    """

    def __init__(self, timer: EpochTimer, fold: str, folds_after: int) -> None:
        self.timer, self.fold, self.folds_after = timer, fold, folds_after
        self._fit_start = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        now = time.perf_counter()
        # the first epoch carries warm-up; later ones say more about the rest (an epoch cut short is not timed)
        recent = self.timer.times[-3:] or [now - self.timer.epoch_start]
        log.info(epoch_line(self.fold, (trainer.current_epoch + 1, trainer.max_epochs),
                            dict(trainer.callback_metrics), now - self._fit_start, sum(recent) / len(recent),
                            self.folds_after))
