"""The Lightning Trainer of one fold: callbacks, the checkpoint rule, profiler, and the time cap's facts."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint, Timer
from lightning.pytorch.profilers import AdvancedProfiler, Profiler, PyTorchProfiler, SimpleProfiler

from esclab.config import ExperimentConfig
from esclab.runs import FoldDir
from esclab.train.loggers import build_loggers
from esclab.train.precision import resolve_precision

log = logging.getLogger(__name__)


def build_profiler(name: str | None, fold_dir: Path) -> Profiler | None:
    """Lightning's profiler of that name, writing ``fold_dir/fit-profile.txt`` (``None``: no profiling)."""
    kinds = {"simple": SimpleProfiler, "advanced": AdvancedProfiler, "pytorch": PyTorchProfiler}
    return kinds[name](dirpath=fold_dir, filename="profile") if name else None


def build_trainer(cfg: ExperimentConfig, fold_dir: Path, extra_callbacks: list[L.Callback], has_val: bool,
                  progress_bar: bool) -> L.Trainer:
    """A Trainer with the run's precision, devices and strategy; checkpoints under ``fold_dir``.

    Lightning's bar shows when ``progress_bar``.
    """
    t = cfg.train
    mode = "max" if t.monitor.endswith("acc") else "min"
    # The tested checkpoint is fixed in advance: the best validation epoch, or the last epoch without a
    # validation split (no early stopping then: nothing but a held-out split may stop a recipe early).
    if has_val:
        ckpt = ModelCheckpoint(dirpath=FoldDir(fold_dir).checkpoints, filename="best", monitor=t.monitor, mode=mode,
                               save_last=True, save_top_k=1)
        callbacks = [ckpt, EarlyStopping(monitor=t.monitor, mode=mode, patience=t.early_stopping_patience)]
    else:
        # Kept every epoch (resumable); save_top_k=0 with save_last would write it only when training ends,
        # with the epoch counter already advanced past the last epoch.
        callbacks = [ModelCheckpoint(dirpath=FoldDir(fold_dir).checkpoints, filename="last", save_top_k=1,
                                     enable_version_counter=False)]
    return L.Trainer(
        max_epochs=t.max_epochs, max_time=timedelta(minutes=t.max_time_min) if t.max_time_min else None,
        accelerator=t.accelerator, devices=t.devices, strategy=t.strategy,
        num_nodes=t.num_nodes, precision=resolve_precision(t.precision, t.accelerator), deterministic=t.deterministic,
        callbacks=[*callbacks, LearningRateMonitor(logging_interval="epoch"), *extra_callbacks],
        logger=build_loggers(t.logger, fold_dir, cfg.name), enable_progress_bar=progress_bar,
        enable_model_summary=False, reload_dataloaders_every_n_epochs=1 if t.progressive else 0,
        num_sanity_val_steps=0, default_root_dir=fold_dir, log_every_n_steps=10,
        limit_val_batches=1.0 if has_val else 0, profiler=build_profiler(t.profiler, fold_dir),
    )


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """One of this fold's own Lightning checkpoints (it holds loop state, so not ``weights_only``).

    Memory-mapped: the callers read the epoch and step counters, not the weights Lightning loads itself.
    """
    return torch.load(path, map_location="cpu", weights_only=False, mmap=True)


def time_cap_facts(trainer: L.Trainer, cfg: ExperimentConfig) -> dict[str, Any]:
    """``truncated`` (always written): did ``train.max_time_min`` stop the fold before its planned epochs?

    Early stopping on a validation split is part of a recipe and is not truncation. A truncated
    one-cycle schedule never annealed its learning rate; ``warning`` says so.
    """
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    stopped_early = any(isinstance(c, EarlyStopping) and c.stopped_epoch > 0 for c in trainer.callbacks)
    done = trainer.fit_loop.epoch_progress.current.completed
    truncated = bool(timer is not None and timer.time_remaining() <= 0 and not stopped_early
                     and done < cfg.train.max_epochs)
    facts: dict[str, Any] = {"truncated": truncated, "planned_epochs": int(cfg.train.max_epochs),
                             "completed_epochs": int(done)}
    if truncated:
        facts["warning"] = (f"train.max_time_min={cfg.train.max_time_min} stopped the fold after {done} of "
                            f"{cfg.train.max_epochs} planned epochs")
        if cfg.train.lr_schedule == "onecycle":
            facts["warning"] += ": the one-cycle schedule never reached its annealing end"
        log.warning(facts["warning"])
    return facts
