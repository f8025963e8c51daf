"""Confidence that means what it says: temperature scaling, calibration error and the rejection rule.

Pure functions on numpy arrays (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017):

- :func:`fit_temperature`: the one number ``T`` that divides the logits so their softmax has the least
  negative log-likelihood on held-out predictions (the argmax, and so accuracy, does not change).
- :func:`expected_calibration_error`: the gap between confidence and accuracy, weighted over 15
  equal-width confidence bins; :func:`reliability_bins` gives the diagram's points.
- :func:`rejection_threshold`: the lowest maximum probability a known clip may have, chosen so that a
  stated share of held-out known clips (the false-rejection rate, 5 % by default) fall below it.
  Below it the answer is :data:`UNKNOWN`.

Log-probabilities work wherever logits do: ``softmax(log p / T)`` equals ``softmax(z / T)`` for
``p = softmax(z)``, because the two differ by a constant per row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

#: The answer when the best calibrated probability is below the rejection threshold.
UNKNOWN = "unknown"
#: Confidence bins of the expected calibration error.
ECE_BINS = 15
#: Default share of held-out known clips the rejection rule may turn away.
FALSE_REJECTION = 0.05
#: ``T`` is searched in ``[1 / 20, 20]`` (log scale).
_LOG_T_BOUNDS = (-np.log(20.0), np.log(20.0))


def log_probabilities(probs: np.ndarray) -> np.ndarray:
    """``log p`` of ``(N, C)`` probabilities, floored at ``1e-12`` so a zero stays finite."""
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, None))


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(logits / T)`` row by row; ``logits`` may be log-probabilities."""
    return softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)


def negative_log_likelihood(logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0) -> float:
    """Mean ``-log softmax(logits / T)[target]``."""
    log_p = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
    return float(-log_p[np.arange(len(targets)), targets].mean())


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of ``(N, C)`` logits against ``(N,)`` targets.

    Returns 1.0 for no predictions. ``T > 1`` softens over-confident scores, ``T < 1`` sharpens timid ones.

    Raises:
        ValueError: ``logits`` and ``targets`` of different lengths, or non-finite logits.
    """
    logits, targets = np.asarray(logits, dtype=np.float64), np.asarray(targets)
    if len(logits) != len(targets):
        raise ValueError(f"{len(logits)} predictions but {len(targets)} targets")
    if len(logits) == 0:
        return 1.0
    if not np.isfinite(logits).all():
        raise ValueError("logits must be finite to fit a temperature")
    result = minimize_scalar(lambda log_t: negative_log_likelihood(logits, targets, float(np.exp(log_t))),
                             bounds=_LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


def reliability_bins(probs: np.ndarray, targets: np.ndarray, n_bins: int = ECE_BINS) -> dict[str, list[float]]:
    """Per equal-width confidence bin: ``confidence`` (mean max probability), ``accuracy`` and ``count``.

    Empty bins are left out; ``lower`` and ``upper`` are each listed bin's edges.
    """
    probs, targets = np.asarray(probs), np.asarray(targets)
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == targets
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    out: dict[str, list[float]] = {"lower": [], "upper": [], "confidence": [], "accuracy": [], "count": []}
    for b in range(n_bins):
        members = which == b
        if members.any():
            out["lower"].append(float(edges[b]))
            out["upper"].append(float(edges[b + 1]))
            out["confidence"].append(float(confidence[members].mean()))
            out["accuracy"].append(float(correct[members].mean()))
            out["count"].append(int(members.sum()))
    return out


def expected_calibration_error(probs: np.ndarray, targets: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """``sum_b (n_b / N) |accuracy_b - confidence_b|`` over ``n_bins`` equal-width bins of the max probability."""
    if len(probs) == 0:
        return 0.0
    bins = reliability_bins(probs, targets, n_bins)
    gaps = np.abs(np.asarray(bins["accuracy"]) - np.asarray(bins["confidence"]))
    return float((np.asarray(bins["count"]) * gaps).sum() / len(probs))


def rejection_threshold(max_probs: np.ndarray, false_rejection: float = FALSE_REJECTION) -> float:
    """The threshold below which about ``false_rejection`` of these known clips' max probabilities fall.

    The ``false_rejection`` quantile (lower interpolation, so at most that share lies strictly below it);
    0.0 (reject nothing) for no clips or a rate of 0.

    Raises:
        ValueError: ``false_rejection`` outside ``[0, 1)``.
    """
    if not 0.0 <= false_rejection < 1.0:
        raise ValueError(f"false_rejection must be in [0, 1), got {false_rejection}")
    max_probs = np.asarray(max_probs, dtype=np.float64)
    if len(max_probs) == 0 or false_rejection == 0.0:
        return 0.0
    return float(np.quantile(max_probs, false_rejection, method="lower"))


def check_threshold(value: float) -> float:
    """``value`` if it is a probability threshold in ``[0, 1]``.

    Raises:
        ValueError: outside ``[0, 1]`` or not finite.
    """
    if not (np.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"a rejection threshold is a probability in [0, 1], got {value}")
    return float(value)


def calibrate(held_out_logits: np.ndarray, targets: np.ndarray, source: str,
              false_rejection: float = FALSE_REJECTION) -> dict[str, Any]:
    """A fold's calibration from predictions on data it did not train on (not its test fold).

    Returns ``{temperature, reject_below, false_rejection, source, n, ece_before, ece_after,
    nll_before, nll_after}``: the threshold is the ``false_rejection`` quantile of the calibrated
    max probabilities of those held-out clips.
    """
    targets = np.asarray(targets)
    temperature = fit_temperature(held_out_logits, targets)
    before, after = apply_temperature(held_out_logits, 1.0), apply_temperature(held_out_logits, temperature)
    return {
        "temperature": round(temperature, 4),
        "reject_below": round(rejection_threshold(after.max(axis=1), false_rejection), 4),
        "false_rejection": false_rejection,
        "source": source,
        "n": int(len(targets)),
        "ece_before": round(expected_calibration_error(before, targets), 4),
        "ece_after": round(expected_calibration_error(after, targets), 4),
        "nll_before": round(negative_log_likelihood(held_out_logits, targets), 4),
        "nll_after": round(negative_log_likelihood(held_out_logits, targets, temperature), 4),
    }


def pooled_calibration(fold_probs: dict[int, np.ndarray], fold_targets: dict[int, np.ndarray],
                       fold_calibration: dict[int, dict[str, Any] | None]) -> dict[str, Any] | None:
    """A run's calibration on its pooled test predictions (the folds' calibrated probabilities).

    Each fold's scores before calibration are recovered as ``softmax(T log p)``. Returns ``ece_before``,
    ``ece_after``, ``temperature`` (mean over the folds), ``temperatures`` and ``reject_below`` per fold,
    ``false_rejection`` (the target share), ``test_rejected`` (the share of test clips, all of known
    classes, that the rule turned away), ``accuracy_accepted`` (accuracy on the rest) and ``reliability``
    (:func:`reliability_bins` after calibration); ``None`` when no fold is calibrated.
    """
    folds = [k for k in sorted(fold_probs) if fold_calibration.get(k)]
    if not folds:
        return None
    before, after, targets, rejected = [], [], [], []
    for k in folds:
        calibration, probs = fold_calibration[k], np.asarray(fold_probs[k], dtype=np.float64)
        before.append(apply_temperature(log_probabilities(probs), 1.0 / calibration["temperature"]))
        after.append(probs)
        targets.append(np.asarray(fold_targets[k]))
        rejected.append(probs.max(axis=1) < calibration["reject_below"])
    before_all, after_all, targets_all = np.concatenate(before), np.concatenate(after), np.concatenate(targets)
    rejected_all = np.concatenate(rejected)
    accepted = ~rejected_all
    temperatures = {str(k): fold_calibration[k]["temperature"] for k in folds}
    return {
        "ece_before": round(expected_calibration_error(before_all, targets_all), 4),
        "ece_after": round(expected_calibration_error(after_all, targets_all), 4),
        "temperature": round(float(np.mean(list(temperatures.values()))), 4),
        "temperatures": temperatures,
        "reject_below": {str(k): fold_calibration[k]["reject_below"] for k in folds},
        "false_rejection": fold_calibration[folds[0]]["false_rejection"],
        "sources": sorted({fold_calibration[k]["source"] for k in folds}),
        "test_rejected": round(float(rejected_all.mean()), 4),
        "accuracy_accepted": round(float((after_all.argmax(axis=1) == targets_all)[accepted].mean()), 4)
        if accepted.any() else None,
        "reliability": reliability_bins(after_all, targets_all),
        "reliability_before": reliability_bins(before_all, targets_all),
        "folds": [int(k) for k in folds],
    }
