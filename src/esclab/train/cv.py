"""Cross-validation on the dataset's folds: ``run_cv(config, out_dir) -> CVResult``.

Each fold trains on the other folds (minus a validation split) and tests on itself. A fold
whose ``metrics.json`` exists is done; an unfinished fold resumes from its ``last.ckpt``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.utilities import rank_zero_only

from esclab import metrics as M
from esclab.bundle import save_bundle
from esclab.calibration import calibrate, log_probabilities, pooled_calibration
from esclab.config import ConfigError, ExperimentConfig, load_config_file, save_config, to_dict
from esclab.data import ClipTable
from esclab.data.datamodule import FoldDataModule
from esclab.data.prepare import PreparedData, prepare_data
from esclab.errors import EsclabError
from esclab.features.cache import file_id
from esclab.model_card import fold_card_facts, write_model_card
from esclab.progress import format_duration, stderr_is_terminal
from esclab.provenance import RunProvenance, dataset_facts
from esclab.runs import (
    FoldDir,
    RunDir,
    join_log,
    set_log_aside,
    write_csv,
    write_json,
    write_predictions,
    write_skipped,
    write_split,
)
from esclab.train.averaging import build_weight_averaging, interpolate_weights
from esclab.train.callbacks import EpochProgress, EpochTimer, FitClock, ReseedEveryEpoch, fold_label
from esclab.train.distill import probe_teacher
from esclab.train.frozen import attach_frozen_outputs, trains_from_cache
from esclab.train.loggers import check_logger
from esclab.train.module import ClassifierModule, count_parameters
from esclab.train.probe import init_head_from_probe, load_embeddings, probe_fold, standardized_embeddings
from esclab.train.trainer import build_trainer, read_checkpoint, time_cap_facts

log = logging.getLogger(__name__)


#: What may change when a run resumes: which folds run, whether missing clips are allowed, how it prints and
#: where the curves also go. Anything else is the recipe, and a run folder refuses another one.
RESUMABLE_KEYS = ("data.folds", "data.allow_missing", "train.progress_bar", "train.logger")


class RunConflictError(EsclabError, ValueError):
    """The output folder holds a run with a different configuration."""


@dataclass
class CVResult:
    """What a cross-validation run measured (also written to ``out_dir/summary.json``)."""

    out_dir: Path
    fold_metrics: dict[int, dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)


def default_run_dir(cfg: ExperimentConfig) -> Path:
    return Path(cfg.output_dir) / f"{cfg.name}-{datetime.now():%Y%m%d-%H%M%S}"


def run_cv(cfg: ExperimentConfig, out_dir: str | Path | None = None, progress: bool = True) -> CVResult:
    """Cross-validate ``cfg`` over ``cfg.data.folds``; resumable. Training writes numbers; the pictures
    (:func:`esclab.evaluate.run_figures.draw_run_figures`: ``confusion_matrix.png``) and the report
    (:func:`esclab.evaluate.report.build_report`) are drawn apart, as ``esclab cv`` does after this returns:
    a library caller calls those two functions on ``out_dir`` for the same files.

    Args:
        cfg: the resolved experiment.
        out_dir: run folder (default ``runs/NAME-TIME``); an existing one resumes.
        progress: show progress bars.

    Example (two folds of a tiny folder of tones; a real run points ``data.root`` at ESC-50):
        >>> import tempfile
        >>> import soundfile as sf
        >>> from esclab.config import load_config
        >>> root, rows = Path(tempfile.mkdtemp()), ["path,label,fold"]
        >>> for i in range(8):
        ...     label, hz = ("low", 300) if i % 2 else ("high", 1200)
        ...     sf.write(root / f"{i}.wav", np.sin(2 * np.pi * hz * np.arange(4000) / 8000), 8000)
        ...     rows.append(f"{i}.wav,{label},{1 + i // 4}")
        >>> _ = (root / "labels.csv").write_text("\\n".join(rows))
        >>> cfg = load_config("configs/experiment/paper_cnn.yaml", [
        ...     "data.dataset=folder", f"data.csv={root / 'labels.csv'}", "data.folds=[1,2]", "data.val_fraction=0",
        ...     "audio.sample_rate=8000", "audio.duration=0.5", "features.n_mels=32", "features.n_fft=256",
        ...     "features.hop_length=128", "features.frames=32", f"features.cache_dir={root / 'cache'}",
        ...     "model.kwargs.channels=[4,8,8]", "model.kwargs.dense_units=[8]", "train.batch_size=4",
        ...     "train.max_epochs=1", "train.precision=32", "train.progress_bar=false"])
        >>> result = run_cv(cfg, root / "run", progress=False)
        >>> sorted(result.fold_metrics), result.fold_metrics[1]["checkpoint_rule"], result.summary["n_clips"]
        ([1, 2], 'last epoch', 8)
    """
    if cfg.train.mode == "ensemble":
        raise ConfigError("train.mode ensemble is a run made from finished runs: use `esclab ensemble RUN RUN ... --out`")
    check_logger(cfg.train.logger)  # a missing MLflow stops here, before a run folder or any data
    out = Path(out_dir) if out_dir else default_run_dir(cfg)
    run = RunDir(out)
    _claim_run_dir(out, cfg)
    with torch_threads(cfg.train.num_threads):
        return _run_folds(cfg, run, progress)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` (``None``: unchanged) inside, restored after."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_folds(cfg: ExperimentConfig, run: RunDir, progress: bool) -> CVResult:
    """Prepare the data once, then train, test and write every unfinished fold, then the summary."""
    out = run.path
    provenance = RunProvenance(run.env, torch.get_num_threads())
    if is_main_process():
        provenance.start()
    start = time.perf_counter()
    data = prepare_data(cfg, progress=progress)
    if is_main_process():
        provenance.record_data(dataset_facts(data.table.clips["path"].tolist(), data.table.metadata, data.rates))
    if cfg.train.mode == "probe" and not cfg.features.standardize:  # standardised: per fold, in _probe_fold
        paths = data.table.clips["path"].tolist()
        data.embeddings = load_embeddings(cfg, data.specs, data.table.clips["clip_id"].tolist(),
                                          [file_id(p) for p in paths], len(data.table.class_names), progress=progress)
    elif trains_from_cache(cfg):  # the frozen layers run once per clip and variant, not once per epoch
        attach_frozen_outputs(cfg, data, len(data.table.class_names), progress=progress)
    if is_main_process():
        write_skipped(run.skipped, data.table.skipped)
    for skipped in data.table.skipped:
        log.warning("skipped %s (fold %d): %s", skipped.path, skipped.fold, skipped.reason)
    results = {}
    folds = list(cfg.data.folds)
    for position, fold in enumerate(folds, 1):
        fold_dir = run.fold(fold)
        if fold_dir.is_done():
            log.info("fold %d already done: %s", fold, fold_dir.metrics)
            results[fold] = json.loads(fold_dir.metrics.read_text())
            continue
        label = fold_label(fold, position, len(folds))
        folds_after = sum(not run.fold(k).is_done() for k in folds[position:])
        fold_start = time.perf_counter()
        results[fold] = train_fold(cfg, data, fold, fold_dir.path, progress=progress, label=label,
                                   folds_after=folds_after)
        if is_main_process():
            provenance.fold_finished(fold, results[fold].get("precision"))
            _log_fold_done(label, results[fold], time.perf_counter() - fold_start)
    if not is_main_process():  # other DDP ranks trained with rank 0; it alone writes results
        return CVResult(out, results)
    summary = summarize(run, cfg, data.table, results, time.perf_counter() - start)
    provenance.end()
    return CVResult(out, results, summary)


def _log_fold_done(label: str, metrics: dict[str, Any], seconds: float) -> None:
    """``fold 2/5 done: accuracy 93.0 %, macro-F1 92.4 %, 3m12s``."""
    log.info("%s done: accuracy %.1f %%, macro-F1 %.1f %%, %s", label, 100 * metrics["accuracy"],
             100 * metrics["macro_f1"], format_duration(seconds))


def is_main_process() -> bool:
    """True on global rank 0 (and whenever the run is not distributed)."""
    return rank_zero_only.rank == 0


def _claim_run_dir(out: Path, cfg: ExperimentConfig) -> None:
    """Create the run folder, or check that an existing one ran the same experiment."""
    saved = RunDir(out).config
    if saved.is_file():
        previous = to_dict(load_config_file(saved))
        current = to_dict(cfg)
        for d in (previous, current):
            for key in RESUMABLE_KEYS:
                group, name = key.split(".")
                d[group].pop(name, None)
        if previous != current:
            diff = sorted(f"{g}.{k}" for g in current if isinstance(current[g], dict)
                          for k in current[g] if previous.get(g, {}).get(k) != current[g][k])
            raise RunConflictError(f"{out} holds a run with a different config (differs in: {', '.join(diff)}); "
                                   f"use another --out or the same config")
    out.mkdir(parents=True, exist_ok=True)
    if is_main_process():
        save_config(cfg, saved)


def train_fold(cfg: ExperimentConfig, data: PreparedData, fold: int, fold_dir: Path, progress: bool = True,
               label: str = "", folds_after: int = 0) -> dict[str, Any]:
    """Train on every fold but ``fold``, test on ``fold``; write metrics, predictions and the bundle.

    ``label`` (:func:`fold_label`) and ``folds_after`` (folds still to train) go into the per-epoch lines.

    A fold resumed from ``last.ckpt`` gives the metrics an uninterrupted one does: the batch order,
    bank variants and global RNGs are functions of (seed, epoch), and the per-epoch log and fit time
    carry over from the earlier sessions.
    """
    if cfg.train.mode == "probe":
        return _probe_fold(cfg, data, fold, fold_dir)
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    clips = data.table.clips
    inputs, bank = data.training_inputs()
    # a calibration-only split when there is no validation split (train.calibration_split): held out of training
    held_out = cfg.data.val_fraction or (cfg.train.calibration_split if cfg.train.calibrate else 0.0)
    dm = FoldDataModule(inputs, clips["target"].to_numpy(), clips["fold"].to_numpy(), fold,
                        batch_size=cfg.train.batch_size, val_fraction=held_out, seed=cfg.train.seed,
                        standardize=cfg.features.standardize, bank=bank, num_workers=cfg.data.num_workers,
                        progressive=cfg.train.progressive, groups=clips["group"].to_numpy())
    files = FoldDir(fold_dir)
    fold_dir.mkdir(parents=True, exist_ok=True)
    has_val = len(dm.val_idx) > 0 and cfg.data.val_fraction > 0  # a split that chooses the checkpoint
    write_split(files.split, clips["clip_id"], {"train": dm.train_idx, "val" if has_val else "calibration": dm.val_idx,
                                                "test": dm.test_idx})
    mean, std = dm.norm_stats if dm.norm_stats is not None else (None, None)
    train = {**to_dict(cfg)["train"], "monitor": cfg.train.monitor if has_val else "train_loss"}
    module = ClassifierModule(cfg.model.name, len(data.table.class_names), cfg.model.kwargs, cfg.model.pretrained,
                              train=train, augment=to_dict(cfg)["augment"],
                              norm_mean=mean, norm_std=std, input_size=cfg.features.input_size,
                              pretrained_partial=cfg.model.pretrained_partial,
                              frozen_inputs=trains_from_cache(cfg))
    head_facts = {}
    if cfg.train.head_init == "probe":  # LP-FT: start from the training split's linear probe
        head_facts = init_head_from_probe(module.model, inputs[dm.train_idx], clips["target"].to_numpy()[dm.train_idx],
                                          cfg.train.probe_c, cfg.train.seed, from_frozen=trains_from_cache(cfg))
    if cfg.train.distill_weight > 0:  # the teacher: the pretrained network and the training split's probe
        teacher, teacher_facts = probe_teacher(
            module.model, inputs[dm.train_idx], clips["target"].to_numpy()[dm.train_idx],
            cfg.train.probe_c, cfg.train.seed, from_frozen=trains_from_cache(cfg))
        module.set_teacher(teacher)
        head_facts = {**head_facts, **teacher_facts}
    timer, clock = EpochTimer(), FitClock()
    callbacks: list[L.Callback] = [timer, clock, ReseedEveryEpoch(cfg.train.seed)]
    averaging = build_weight_averaging(cfg.train)
    if averaging is not None:  # the tested checkpoint and the bundle then hold the averaged weights
        callbacks.append(averaging)
    bar = cfg.train.progress_bar and progress and stderr_is_terminal()
    if not bar:  # one line per epoch instead of the bar (a log file, a batch job, train.progress_bar=false)
        callbacks.append(EpochProgress(timer, label or f"fold {fold}", folds_after))
    trainer = build_trainer(cfg, fold_dir, callbacks, has_val=has_val, progress_bar=bar)
    last = files.last_checkpoint
    resume = last.is_file()
    if resume and trainer.is_global_zero:
        set_log_aside(files, read_checkpoint(last)["global_step"])
    # WiSE-FT's start: the same in every session of a resumed fold (pretrained weights, the probe's head)
    start = {k: v.detach().clone() for k, v in module.model.state_dict().items()} if cfg.train.wise_alpha < 1 else None
    trainer.fit(module, datamodule=dm, ckpt_path=str(last) if resume else None)
    if trainer.is_global_zero:
        join_log(files)
    tested_path = (trainer.checkpoint_callback.best_model_path if has_val else "") or str(last)
    tested = read_checkpoint(tested_path)
    weights: str | None = tested_path  # what is tested: a checkpoint, or (None) the module as it stands
    if start is not None:
        module.load_state_dict(tested["state_dict"])
        module.model.load_state_dict(interpolate_weights(start, module.model.state_dict(), cfg.train.wise_alpha))
        weights = None
    probs = predict(module, dm, weights)
    calibration = calibrate_fit(cfg, module, dm, weights) if cfg.train.calibrate else None
    if calibration is not None:  # the head now divides its logits by T: test again through it
        probs = predict(module, dm, None)
    result = {
        "checkpoint_rule": f"best {cfg.train.monitor} on the validation split" if has_val else "last epoch",
        **({"wise_alpha": cfg.train.wise_alpha} if start is not None else {}),
        "tested_epoch": int(tested["epoch"]) + 1,
        "epochs": int(trainer.current_epoch),
        **time_cap_facts(trainer, cfg),
        "steps": int(trainer.global_step),
        "epoch_time_s": float(np.mean(timer.times)) if timer.times else None,
        "fit_time_s": round(clock.total, 1),
        "n_train": int(len(dm.train_idx)), "n_val": int(len(dm.val_idx)) if has_val else 0,
        "n_calibration": int(len(dm.val_idx)) if cfg.train.calibrate else 0,
        "val_groups_shared_with_train": int(len(set(clips["group"].iloc[dm.val_idx]) &
                                                set(clips["group"].iloc[dm.train_idx]))),
        "devices": int(trainer.world_size),
        "precision": str(trainer.precision),
        "frozen_blocks": int(module.model.frozen_blocks),
        **(averaging.facts() if averaging is not None else {}),
        **head_facts,
        **pretrained_facts(module.model),
        **({"calibration": calibration} if cfg.train.calibrate else {}),
    }
    if not trainer.is_global_zero:
        return result
    return _finish_fold(cfg, data, fold, fold_dir, dm.test_idx, probs, module.model, module.standardize, result)


def pretrained_facts(model: torch.nn.Module) -> dict[str, Any]:
    """``{"pretrained": {name, sha256, loaded, skipped, missing}}`` for a model built with pretrained weights."""
    report = getattr(model, "pretrained_report", None)
    return {"pretrained": report.facts()} if report is not None else {}


def _probe_fold(cfg: ExperimentConfig, data: PreparedData, fold: int, fold_dir: Path) -> dict[str, Any]:
    """``train.mode=probe``: a linear head on the cached embeddings of the training folds."""
    folds = data.table.clips["fold"].to_numpy()
    train_idx, test_idx = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
    fold_dir.mkdir(parents=True, exist_ok=True)
    write_split(FoldDir(fold_dir).split, data.table.clips["clip_id"], {"train": train_idx, "test": test_idx})
    embeddings, standardize = data.embeddings, None
    if cfg.features.standardize:  # statistics of this fold's training clips, so embeddings of this fold
        embeddings, standardize = standardized_embeddings(cfg, data.specs, train_idx, len(data.table.class_names))
    model, probs, facts = probe_fold(cfg, embeddings, data.table.clips["target"].to_numpy(), folds,
                                     train_idx, test_idx, len(data.table.class_names))
    result = {"checkpoint_rule": "linear probe (no epochs)", **facts, "truncated": False, "precision": "32-true",
              "n_train": int(len(train_idx)), "n_val": 0, **pretrained_facts(model)}
    return _finish_fold(cfg, data, fold, fold_dir, test_idx, probs, model, standardize, result,
                        facts["model_kwargs"])


def _finish_fold(cfg: ExperimentConfig, data: PreparedData, fold: int, fold_dir: Path, test_idx: np.ndarray,
                 probs: np.ndarray, model: torch.nn.Module, standardize: torch.nn.Module | None,
                 facts: dict[str, Any], model_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write a tested fold: ``predictions.csv``, the bundle ``model.ckpt`` and ``metrics.json`` (last).

    ``model_kwargs``: what the bundle rebuilds the model with, where the fold chose it (a probe's embedding).
    """
    facts["skipped_test_clips"] = sum(1 for s in data.table.skipped if s.fold == fold)
    test = data.table.clips.iloc[test_idx].reset_index(drop=True)
    audio = data.bundle_audio(cfg.audio)
    result = {
        "fold": fold,
        **M.fold_metrics(test["target"].to_numpy(), probs.argmax(axis=1), len(data.table.class_names)),
        **facts,
        "parameters": count_parameters(model),
        "model": cfg.model.name,
        "data_sample_rate": data.data_rate,
        "band_rate": audio.band_rate,
    }
    files = FoldDir(fold_dir)
    fold_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(files.predictions, test, probs, data.table.class_names)
    save_bundle(files.bundle, model, cfg.model.name, cfg.model.kwargs if model_kwargs is None else model_kwargs,
                data.table.class_names,
                audio, cfg.features, standardize, metrics=result,
                card=fold_card_facts(to_dict(cfg), result, data.table.class_names))
    write_json(files.metrics, result)
    return result


def predict(module: ClassifierModule, dm: FoldDataModule, checkpoint: str | None, split: str = "test") -> np.ndarray:
    """Class probabilities ``(N, C)`` of ``checkpoint``'s weights (``None``: the module's own), in the order
    of the ``test`` or ``val`` split.

    Lightning's ``predict`` on one device in fp32, whatever the training precision (``predict_step``
    averages over ``augment.tta_views`` time shifts); ``module`` holds the tested weights afterwards.
    """
    trainer = L.Trainer(accelerator=module.train_cfg.accelerator, devices=1, precision="32", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    loader = dm.val_dataloader() if split == "val" else dm.test_dataloader()
    batches = trainer.predict(module, dataloaders=loader, ckpt_path=checkpoint)
    return torch.cat(batches).numpy()


def calibrate_fit(cfg: ExperimentConfig, module: ClassifierModule, dm: FoldDataModule,
                  tested_path: str | None) -> dict[str, Any] | None:
    """Calibrate a trained fold on its grouped validation split and fold the temperature into its head.

    ``None`` (and a warning) without a validation split: nothing held out that is not the test fold.
    """
    if len(dm.val_idx) == 0:
        log.warning("train.calibrate: no validation split (data.val_fraction = 0) and no calibration split "
                    "(train.calibration_split = 0), so this fold is not calibrated and has no rejection threshold")
        return None
    if len(dm.val_idx) < cfg.train.calibration_min_clips:
        log.warning("train.calibrate: %d validation clips, fewer than train.calibration_min_clips = %d, so this "
                    "fold is not calibrated", len(dm.val_idx), cfg.train.calibration_min_clips)
        return None
    val_probs = predict(module, dm, tested_path, split="val")
    source = ("the grouped validation split" if cfg.data.val_fraction > 0 else
              f"a grouped calibration split held out of training ({cfg.train.calibration_split:.0%} of the training folds)")
    calibration = calibrate(log_probabilities(val_probs), dm.targets.numpy()[dm.val_idx], source,
                            cfg.train.false_rejection)
    module.model.fold_temperature(calibration["temperature"])
    return calibration


def run_calibration(run: RunDir, results: dict[int, dict[str, Any]], num_classes: int) -> dict[str, Any] | None:
    """:func:`esclab.calibration.pooled_calibration` of the folds' ``predictions.csv`` (calibrated probabilities)."""
    calibrated = [k for k in sorted(results) if results[k].get("calibration")]
    if not calibrated:
        return None
    columns = [f"p_{i}" for i in range(num_classes)]
    tables = {k: pd.read_csv(run.fold(k).predictions) for k in calibrated}
    return pooled_calibration({k: t[columns].to_numpy() for k, t in tables.items()},
                              {k: t["target"].to_numpy() for k, t in tables.items()},
                              {k: results[k]["calibration"] for k in calibrated})


def summarize(run: RunDir, cfg: ExperimentConfig, table: ClipTable, results: dict[int, dict[str, Any]],
              wall_time: float) -> dict[str, Any]:
    """Pool the folds' predictions: summary.json, confusion matrix (CSV), per-class report (numbers only:
    :func:`esclab.evaluate.run_figures.draw_run_figures` draws the pictures), then ``MODEL_CARD.md``
    (:func:`esclab.model_card.write_model_card`)."""
    names = table.class_names
    preds = pd.concat([pd.read_csv(run.fold(k).predictions) for k in sorted(results)])
    matrix = M.confusion(preds["target"].to_numpy(), preds["pred"].to_numpy(), len(names))
    write_csv(run.confusion_csv, pd.DataFrame(matrix, index=names, columns=names))
    write_csv(run.per_class, M.per_class_report(preds["target"].to_numpy(), preds["pred"].to_numpy(), names),
              index=False, float_format="%.4f")
    acc_mean, acc_std = M.mean_std([r["accuracy"] for r in results.values()])
    f1_mean, f1_std = M.mean_std([r["macro_f1"] for r in results.values()])
    epoch_times = [r["epoch_time_s"] for r in results.values() if r.get("epoch_time_s")]
    summary = {
        "name": cfg.name, "model": cfg.model.name, "folds": {str(k): results[k] for k in sorted(results)},
        "accuracy_mean": acc_mean, "accuracy_std": acc_std, "macro_f1_mean": f1_mean, "macro_f1_std": f1_std,
        "pooled_accuracy": float(np.trace(matrix) / max(matrix.sum(), 1)),
        "epoch_time_s_mean": float(np.mean(epoch_times)) if epoch_times else None,
        "wall_time_s_this_session": round(wall_time, 1),
        "fit_time_s_total": round(sum(r.get("fit_time_s", 0) for r in results.values()), 1),
        "n_clips": len(table), "skipped": len(table.skipped),
        "skipped_test_clips": {str(k): results[k].get("skipped_test_clips", 0) for k in sorted(results)},
        "truncated_folds": [k for k in sorted(results) if results[k].get("truncated")],
        "warnings": [f"fold {k}: {results[k]['warning']}" for k in sorted(results) if results[k].get("warning")],
        "class_names": names,
        "top_confusions": M.top_confusions(matrix, names).to_dict(orient="records"),
        "calibration": run_calibration(run, results, len(names)),
    }
    write_json(run.summary, summary)
    write_model_card(run.path)
    return summary
