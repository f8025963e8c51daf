"""Linear probe: a frozen pretrained network embeds every clip once; each fold fits a linear head.

The head is scikit-learn's multinomial logistic regression on standardised embeddings, with its
regularisation ``train.probe_c`` fixed in the config (nothing is chosen on a test fold). Standardising
then a linear map is itself a linear map, so the fitted pipeline folds exactly into the model's linear
head: each fold's bundle is the whole network (front end, frozen body, that head), and ``predict``,
``serve``, ``export`` and the report use a probe run like any other. The test fold is scored through
that folded head, so the bundle reproduces ``predictions.csv``.

Embeddings are cached on disk like features: the key covers the feature cache key, the model and its
options, the weights' sha256 and the clips (``CACHE/embeddings/<key>.npz``).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, LeaveOneGroupOut, StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from esclab.calibration import calibrate, log_probabilities
from esclab.config import ExperimentConfig
from esclab.features.cache import cache_key
from esclab.features.frontend import Standardize, band_statistics
from esclab.fsutil import atomic_write
from esclab.models import EscModel, create_model, prepare_for_inference
from esclab.progress import track
from esclab.provenance import source_fingerprint

log = logging.getLogger(__name__)

EMBED_BATCH = 32


def linear_head_of(pipeline: Pipeline) -> tuple[np.ndarray, np.ndarray]:
    """``(weight (C, D), bias (C,))`` of ``StandardScaler -> LogisticRegression`` as one linear map.

    ``W ((x - mean) / scale) + b = (W / scale) x + (b - W mean / scale)``; softmax of it is the
    pipeline's ``predict_proba`` (multinomial).
    """
    scaler, logistic = pipeline[0], pipeline[-1]
    weight = logistic.coef_ / scaler.scale_
    bias = logistic.intercept_ - weight @ scaler.mean_
    return weight.astype(np.float32), bias.astype(np.float32)


def fit_probe(embeddings: np.ndarray, targets: np.ndarray, c: float, seed: int,
              c_grid: list[float] | None = None, groups: np.ndarray | None = None) -> Pipeline:
    """Standardised multinomial logistic regression on ``(N, D)`` embeddings (lbfgs, L2 strength ``1/C``).

    Args:
        embeddings: ``(N, D)`` training embeddings.
        targets: ``(N,)`` class indices.
        c: the inverse regularisation strength when ``c_grid`` is empty.
        seed: the solver's seed.
        c_grid: candidate values of ``C``, chosen by cross-validation inside the training data:
            leave one group out when ``groups`` has at least 3 distinct values (the training folds,
            which ESC-50 keeps apart by source recording), else 4-fold stratified.
        groups: ``(N,)`` group of each training clip.
    """
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed))
    if not c_grid:
        return pipeline.fit(embeddings, targets)
    use_groups = groups is not None and len(np.unique(groups)) >= 3
    search = GridSearchCV(pipeline, {"logisticregression__C": list(c_grid)},
                          cv=LeaveOneGroupOut() if use_groups else StratifiedKFold(4, shuffle=True, random_state=seed))
    search.fit(embeddings, targets, groups=groups if use_groups else None)
    return search.best_estimator_


def embed(model: EscModel, inputs: np.ndarray, progress: bool = False, from_frozen: bool = False) -> np.ndarray:
    """``(N, M, T)`` spectrograms -> ``(N, D)`` embeddings from ``model.forward_features`` (eval, fp32).

    With ``from_frozen``, ``inputs`` are ``(N, ...)`` outputs of the model's frozen layers
    (:mod:`esclab.train.frozen`) and ``forward_features_from_frozen`` embeds them.
    Runs a copy prepared for inference (:func:`~esclab.models.prepare_for_inference`); ``model`` is unchanged.
    """
    model = prepare_for_inference(copy.deepcopy(model))
    out = []
    with torch.inference_mode():
        for start in track(range(0, len(inputs), EMBED_BATCH), desc="embedding batches", enabled=progress):
            batch = torch.as_tensor(inputs[start:start + EMBED_BATCH], dtype=torch.float32)
            features = model.forward_features_from_frozen(batch) if from_frozen else \
                model.forward_features(batch.unsqueeze(1))
            out.append(features.float().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.num_features), np.float32)


def weights_fingerprint(spec: str | None) -> str:
    """The sha256 of the pretrained weights ``spec`` names (the spec itself for hub names)."""
    from esclab.weights import resolve_weights, sha256_file

    if not spec:
        return "random-init"
    if spec.startswith("efficientat:"):
        return resolve_weights(spec).sha256
    path = Path(spec).expanduser()
    return sha256_file(path) if path.is_file() else spec


def embedding_key(cfg: ExperimentConfig, clip_ids: list[str], file_ids: list[str]) -> str:
    """Hash of everything an embedding depends on: front end (settings and code), model (options and code),
    weights, the embedding code, clips."""
    blob = json.dumps({"features": cache_key(cfg.audio, cfg.features), "model": cfg.model.name,
                       "code": source_fingerprint("esclab.models", "esclab.train.probe"),
                       "kwargs": cfg.model.kwargs, "weights": weights_fingerprint(cfg.model.pretrained),
                       "clips": [f"{c}-{f}" for c, f in zip(clip_ids, file_ids, strict=True)]},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def probe_candidates(cfg: ExperimentConfig) -> list[dict[str, Any]]:
    """The ``model.kwargs`` of each candidate embedding: the run's own, updated by each ``train.probe_grid`` entry."""
    return [{**cfg.model.kwargs, **change} for change in cfg.train.probe_grid] or [dict(cfg.model.kwargs)]


def with_kwargs(cfg: ExperimentConfig, kwargs: dict[str, Any]) -> ExperimentConfig:
    """``cfg`` with ``model.kwargs`` replaced (a shallow copy; ``cfg`` is unchanged)."""
    out = copy.copy(cfg)
    out.model = dataclasses.replace(cfg.model, kwargs=dict(kwargs))
    return out


def probe_model(cfg: ExperimentConfig, num_classes: int) -> EscModel:
    """The run's network with its pretrained body and a linear head (``model.kwargs.head: linear``)."""
    return create_model(cfg.model.name, num_classes=num_classes, pretrained=cfg.model.pretrained,
                        pretrained_partial=cfg.model.pretrained_partial,
                        input_size=cfg.features.input_size, **cfg.model.kwargs)


def load_embeddings(cfg: ExperimentConfig, specs: np.ndarray, clip_ids: list[str], file_ids: list[str],
                    num_classes: int, progress: bool = True) -> list[np.ndarray]:
    """``(N, D)`` embeddings of the run's clips for each of :func:`probe_candidates`, from the cache or
    computed (and cached) once."""
    return [_load_embedding(with_kwargs(cfg, kwargs), specs, clip_ids, file_ids, num_classes, progress)
            for kwargs in probe_candidates(cfg)]


def _load_embedding(cfg: ExperimentConfig, specs: np.ndarray, clip_ids: list[str], file_ids: list[str],
                    num_classes: int, progress: bool) -> np.ndarray:
    folder = Path(cfg.features.cache_dir).expanduser().parent / "embeddings"
    path = folder / f"{embedding_key(cfg, clip_ids, file_ids)}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as cached:
                if list(cached["clip_ids"]) == list(clip_ids):
                    return cached["embeddings"]
        except (OSError, ValueError, KeyError) as err:
            log.warning("corrupt embedding cache %s (%s): rebuilding it", path, err)
    start = time.perf_counter()
    embeddings = embed(probe_model(cfg, num_classes), specs, progress=progress)
    log.info("embedded %d clips (%d values each) in %.1f s", len(embeddings), embeddings.shape[1],
             time.perf_counter() - start)
    atomic_write(path, lambda fh: np.savez(fh, embeddings=embeddings, clip_ids=np.asarray(clip_ids)))
    return embeddings


def standardized_embeddings(cfg: ExperimentConfig, specs: np.ndarray, train_idx: np.ndarray,
                            num_classes: int) -> tuple[list[np.ndarray], Standardize]:
    """Embeddings of per-band standardised log-mels (``features.standardize``), one per candidate.

    The statistics come from the fold's training clips only, so these embeddings belong to one fold and are
    not cached; the returned :class:`Standardize` goes into the fold's bundle.
    """
    standardize = Standardize(*band_statistics(torch.from_numpy(specs[train_idx])))
    with torch.no_grad():
        scaled = standardize(torch.from_numpy(specs).unsqueeze(1))[:, 0].numpy()
    embeddings = [embed(probe_model(with_kwargs(cfg, kwargs), num_classes), scaled) for kwargs in probe_candidates(cfg)]
    return embeddings, standardize


def choose_probe(embeddings: list[np.ndarray], targets: np.ndarray, groups: np.ndarray, c: float,
                 c_grid: list[float], seed: int) -> tuple[int, Pipeline, list[float]]:
    """Pick the candidate embedding (and C) with the best leave-one-group-out accuracy on these training clips.

    With one candidate and no C grid nothing is chosen (no inner folds are fitted). Returns the chosen
    candidate's index, its pipeline refitted on all the clips, and each candidate's inner accuracy.
    """
    if len(embeddings) == 1:
        return 0, fit_probe(embeddings[0], targets, c, seed, c_grid, groups), []
    use_groups = len(np.unique(groups)) >= 3
    fewest = int(np.unique(targets, return_counts=True)[1].min())
    if not use_groups and fewest < 2:
        log.warning("too few training clips per class for inner folds: the probe takes the first candidate")
        return 0, fit_probe(embeddings[0], targets, c, seed, [], groups), []
    splitter = LeaveOneGroupOut() if use_groups else StratifiedKFold(min(4, fewest), shuffle=True,
                                                                        random_state=seed)
    scores = []
    for values in embeddings:
        pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed))
        search = GridSearchCV(pipeline, {"logisticregression__C": list(c_grid) or [c]}, cv=splitter)
        search.fit(values, targets, groups=groups if use_groups else None)
        scores.append(float(search.best_score_))
    best = int(np.argmax(scores))  # the first of equal scores: candidates are listed simplest first
    return best, fit_probe(embeddings[best], targets, c, seed, c_grid, groups), scores


def probe_fold(cfg: ExperimentConfig, embeddings: list[np.ndarray], targets: np.ndarray, groups: np.ndarray,
               train_idx: np.ndarray, test_idx: np.ndarray,
               num_classes: int) -> tuple[EscModel, np.ndarray, dict[str, Any]]:
    """Fit the head on ``train_idx`` (``groups``: the inner folds for choosing the embedding and C); return
    the model (built with the chosen embedding's ``model.kwargs``), test probabilities and facts."""
    start = time.perf_counter()
    chosen, pipeline, scores = choose_probe([e[train_idx] for e in embeddings], targets[train_idx],
                                            groups[train_idx], cfg.train.probe_c, cfg.train.probe_c_grid,
                                            cfg.train.seed)
    fit_time = time.perf_counter() - start
    kwargs = probe_candidates(cfg)[chosen]
    weight, bias = linear_head_of(pipeline)
    model = probe_model(with_kwargs(cfg, kwargs), num_classes)
    set_linear_head(model, weight, bias)
    calibration = None
    if cfg.train.calibrate:
        calibration = calibrate_probe(pipeline, embeddings[chosen][train_idx], targets[train_idx], groups[train_idx],
                                      cfg.train.false_rejection, cfg.train.seed, cfg.train.calibration_min_clips)
        if calibration is not None:
            model.fold_temperature(calibration["temperature"])
    with torch.no_grad():
        logits = model.forward_head(torch.from_numpy(embeddings[chosen][test_idx]).float())
    probs = torch.softmax(logits, dim=1).numpy()
    facts = {"fit_time_s": round(fit_time, 2), "probe_iterations": int(np.max(pipeline[-1].n_iter_)),
             "probe_c": float(pipeline[-1].C), "model_kwargs": kwargs}
    if scores:
        facts["probe_inner_accuracy"] = [round(v, 4) for v in scores]
    if cfg.train.calibrate:
        facts["calibration"] = calibration
    return model.eval(), probs, facts


def calibrate_probe(pipeline: Pipeline, embeddings: np.ndarray, targets: np.ndarray, groups: np.ndarray,
                    false_rejection: float, seed: int, min_clips: int = 30) -> dict[str, Any] | None:
    """The probe's calibration (:func:`esclab.calibration.calibrate`) from out-of-fold predictions on its
    training clips: ``pipeline`` (its chosen C) refitted leaving one training fold out at a time (4-fold
    stratified where there are fewer than 3 folds). ``None`` for fewer than ``min_clips`` clips or too few
    per class for inner folds."""
    if len(targets) < min_clips:
        log.warning("only %d training clips (train.calibration_min_clips = %d): the probe is not calibrated",
                    len(targets), min_clips)
        return None
    use_groups = len(np.unique(groups)) >= 3
    fewest = int(np.unique(targets, return_counts=True)[1].min())
    if not use_groups and fewest < 2:
        log.warning("too few training clips per class for inner folds: the probe is not calibrated")
        return None
    splitter = LeaveOneGroupOut() if use_groups else StratifiedKFold(min(4, fewest), shuffle=True, random_state=seed)
    probs = cross_val_predict(clone(pipeline), embeddings, targets, groups=groups if use_groups else None,
                              cv=splitter, method="predict_proba")
    source = "leave-one-fold-out over the training folds" if use_groups else "inner stratified folds of the training clips"
    return calibrate(log_probabilities(probs), targets, source, false_rejection)


def set_linear_head(model: EscModel, weight: np.ndarray, bias: np.ndarray) -> None:
    """Copy ``weight (C, D)`` and ``bias (C,)`` into the model's head, resetting the head to one
    ``Linear(D, C)`` first where it is not one (an MLP head, AST's LayerNorm + Linear)."""
    head = model.get_classifier()
    if not isinstance(head, torch.nn.Linear) or tuple(head.weight.shape) != weight.shape:
        model.reset_classifier(weight.shape[0])
        head = model.get_classifier()
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight).to(head.weight.dtype))
        head.bias.copy_(torch.from_numpy(bias).to(head.bias.dtype))


def init_head_from_probe(model: EscModel, inputs: np.ndarray, targets: np.ndarray, c: float, seed: int,
                         from_frozen: bool = False) -> dict[str, Any]:
    """LP-FT's first step: set ``model``'s linear head to the linear probe of ``inputs`` (the training split).

    The standardised logistic regression (``C = c``) on the model's embeddings folds into its head
    (:func:`linear_head_of`), so the fine-tune starts where the probe ends. Returns facts for the fold's
    ``metrics.json``: the probe's training accuracy, iterations and time.
    """
    start = time.perf_counter()
    embeddings = embed(model, inputs, from_frozen=from_frozen)
    pipeline = fit_probe(embeddings, targets, c, seed)
    set_linear_head(model, *linear_head_of(pipeline))
    return {"head_init": "probe", "head_init_c": c, "head_init_train_accuracy": float(pipeline.score(embeddings, targets)),
            "head_init_time_s": round(time.perf_counter() - start, 1)}
