"""Finished cross-validation runs combined into the run of their ensemble: ``ensemble_runs([A, B], out)``.

Fold by fold, the members' bundles become one :class:`~esclab.models.ensemble.ProbabilityEnsemble`
bundle (so ``predict``, ``serve``, ``export`` and the report use what the run reports), and the fold's
``predictions.csv`` is the weighted mean of the members' test probabilities. Nothing is fitted: the
members and their weights are fixed before any fold is combined, so no test fold chooses anything.
The members must cover the same folds and classes and read the same front end.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from esclab import metrics as M
from esclab.bundle import Bundle, load_bundle, save_bundle
from esclab.config import ExperimentConfig, ModelConfig, load_config_file, save_config, to_dict
from esclab.data import load_dataset
from esclab.errors import EsclabError
from esclab.model_card import fold_card_facts, members_weights
from esclab.models import create_model
from esclab.provenance import RunProvenance
from esclab.runs import RunDir, write_json, write_predictions
from esclab.train.cv import CVResult, summarize


class EnsembleError(EsclabError, ValueError):
    """Runs that cannot be combined; the message says why."""


def ensemble_runs(run_dirs: list[str | Path], out: str | Path, weights: list[float] | None = None,
                  name: str | None = None) -> CVResult:
    """Combine finished runs over the same folds into one run folder of their ensemble.

    Args:
        run_dirs: the member runs (each with ``summary.json``: finished).
        out: the new run folder (must not hold a run yet).
        weights: one weight per member (default: equal).
        name: the run's name (default: the members' names joined by ``+``).

    Raises:
        EnsembleError: unfinished members, different folds, classes or front ends, or an ``out`` in use.
    """
    members = [RunDir(Path(p)) for p in run_dirs]
    if len(members) < 2:
        raise EnsembleError("an ensemble needs at least two runs")
    for member in members:
        if not member.summary.is_file():
            raise EnsembleError(f"{member.path} is not a finished run (no summary.json)")
    weights = [1.0] * len(members) if weights is None else list(weights)
    if len(weights) != len(members):
        raise EnsembleError(f"{len(weights)} weights for {len(members)} runs")
    configs = [load_config_file(m.config) for m in members]
    summaries = [json.loads(m.summary.read_text()) for m in members]
    folds = sorted(int(k) for k in summaries[0]["folds"])
    for member, summary in zip(members, summaries, strict=True):
        if sorted(int(k) for k in summary["folds"]) != folds:
            raise EnsembleError(f"{member.path} covers folds {sorted(summary['folds'])}, the first run {folds}")
        if summary["class_names"] != summaries[0]["class_names"]:
            raise EnsembleError(f"{member.path} has other classes than {members[0].path}")
    run = RunDir(Path(out))
    if run.config.is_file():
        raise EnsembleError(f"{run.path} already holds a run: choose another --out")
    run.path.mkdir(parents=True, exist_ok=True)
    cfg = _ensemble_config(configs, members, weights, name)
    save_config(cfg, run.config)
    provenance = RunProvenance(run.env, torch.get_num_threads())
    provenance.start()
    start = time.perf_counter()
    class_names = summaries[0]["class_names"]
    config = to_dict(cfg)
    card = {"config": config, "weights": members_weights(config["model"]["kwargs"]["members"])}
    results = {fold: _combine_fold(members, weights, fold, run, class_names, card) for fold in folds}
    for fold in folds:
        provenance.fold_finished(fold)
    table = load_dataset(cfg.data, seed=cfg.train.seed)
    summary = summarize(run, cfg, table, results, time.perf_counter() - start)
    provenance.end()
    return CVResult(run.path, results, summary)


def _ensemble_config(configs: list[ExperimentConfig], members: list[RunDir], weights: list[float],
                     name: str | None) -> ExperimentConfig:
    """The first member's config with ``model`` naming the ensemble and ``train.mode: ensemble``."""
    first = configs[0]

    def read(cfg: ExperimentConfig) -> tuple[Any, ...]:  # where a cache lives is not what a model reads
        return cfg.audio, dataclasses.replace(cfg.features, cache_dir=""), cfg.data.dataset

    for cfg, member in zip(configs[1:], members[1:], strict=True):
        if read(cfg) != read(first):
            raise EnsembleError(f"{member.path} reads another dataset or front end than {members[0].path}: "
                                f"an ensemble's members share one input")
    kwargs = {"members": [{"name": c.model.name, "kwargs": c.model.kwargs, "run": str(m.path), "mode": c.train.mode}
                          for c, m in zip(configs, members, strict=True)], "weights": weights}
    model = ModelConfig(name="ensemble", pretrained=None, kwargs=kwargs)
    train = dataclasses.replace(first.train, mode="ensemble")
    return dataclasses.replace(first, name=name or "+".join(c.name for c in configs), model=model, train=train)


def _combine_fold(members: list[RunDir], weights: list[float], fold: int, run: RunDir,
                  class_names: list[str], card: dict[str, Any]) -> dict[str, Any]:
    """One fold of the ensemble run; ``card``: the run's config and its members' weights, for the bundle's card."""
    bundles = [load_bundle(m.fold(fold).bundle) for m in members]
    _check_same_input(bundles, members)
    model = create_model("ensemble", num_classes=len(class_names), input_size=bundles[0].features.input_size,
                         **model_kwargs_of(bundles, weights))
    for target, bundle in zip(model.members, bundles, strict=True):
        target.load_state_dict(bundle.model.state_dict())
    tables = [pd.read_csv(m.fold(fold).predictions) for m in members]
    for member, table in zip(members[1:], tables[1:], strict=True):
        if list(table["clip_id"]) != list(tables[0]["clip_id"]):
            raise EnsembleError(f"{member.path} fold {fold} tested other clips than {members[0].path}")
    columns = [f"p_{i}" for i in range(len(class_names))]
    share = np.asarray(weights, dtype=np.float64) / sum(weights)
    probs = sum(w * t[columns].to_numpy(dtype=np.float64) for w, t in zip(share, tables, strict=True))
    test = tables[0]
    metrics = [json.loads(m.fold(fold).metrics.read_text()) for m in members]
    result = {
        "fold": fold,
        **M.fold_metrics(test["target"].to_numpy(), probs.argmax(axis=1), len(class_names)),
        "checkpoint_rule": "weighted mean of the members' tested checkpoints (fixed in advance)",
        "members": [{"run": str(m.path), "accuracy": r["accuracy"], "weight": float(w)}
                    for m, r, w in zip(members, metrics, share, strict=True)],
        "fit_time_s": round(sum(r.get("fit_time_s", 0.0) for r in metrics), 1),
        "truncated": any(r.get("truncated") for r in metrics),
        "skipped_test_clips": metrics[0].get("skipped_test_clips", 0),
        "n_train": metrics[0].get("n_train"), "n_val": metrics[0].get("n_val", 0),
        "parameters": sum(p.numel() for p in model.parameters()),
        "model": "ensemble",
        "data_sample_rate": metrics[0].get("data_sample_rate"),
        "band_rate": bundles[0].audio.band_rate,
    }
    calibration = ensemble_calibration([b.calibration for b in bundles], share)
    if calibration is not None:
        result["calibration"] = calibration
    files = run.fold(fold)
    files.path.mkdir(parents=True, exist_ok=True)
    write_predictions(files.predictions, test, probs, class_names)
    save_bundle(files.bundle, model, "ensemble", dict(model_kwargs_of(bundles, weights)), class_names,
                bundles[0].audio, bundles[0].features, None, metrics=result,
                card=fold_card_facts(card["config"], result, class_names, card["weights"]))
    write_json(files.metrics, result)
    return result


def ensemble_calibration(members: list[dict[str, Any] | None], share: np.ndarray) -> dict[str, Any] | None:
    """An ensemble fold's calibration: the mixture of its members' calibrated probabilities (no temperature of
    its own: nothing is held out at this stage), and the weighted mean of their rejection thresholds.
    ``None`` unless every member was calibrated."""
    if not members or any(m is None for m in members):
        return None
    return {"temperature": 1.0,
            "reject_below": round(float(sum(w * m["reject_below"] for w, m in zip(share, members, strict=True))), 4),
            "false_rejection": members[0]["false_rejection"],
            "source": "the members' own calibrations (their calibrated probabilities mixed; thresholds averaged)",
            "n": 0}


def model_kwargs_of(bundles: list[Bundle], weights: list[float]) -> dict[str, Any]:
    """The ensemble's ``create_model`` options: each member's model and options, and the weights."""
    return {"members": [{"name": b.model_name, "kwargs": b.model_kwargs,
                         "classifier_reset": bool(b.model.classifier_reset)} for b in bundles],
            "weights": list(weights)}


def _check_same_input(bundles: list[Bundle], members: list[RunDir]) -> None:
    def read(bundle: Bundle) -> tuple[Any, ...]:
        return bundle.audio, dataclasses.replace(bundle.features, cache_dir="")

    for bundle, member in zip(bundles[1:], members[1:], strict=True):
        if read(bundle) != read(bundles[0]):
            raise EnsembleError(f"{member.path}'s bundles read another front end than {members[0].path}'s")
    if any(b.frontend[1].enabled for b in bundles):
        raise EnsembleError("members with per-band standardisation cannot share one front end")
