"""Temperature scaling, calibration error and the rejection rule (``esclab.calibration``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from esclab.calibration import (
    apply_temperature,
    calibrate,
    expected_calibration_error,
    fit_temperature,
    log_probabilities,
    negative_log_likelihood,
    pooled_calibration,
    rejection_threshold,
    reliability_bins,
)
from esclab.models import create_model


def overconfident(n: int = 2000, classes: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a model whose true temperature is 3: ``softmax(z / 3)`` is the real class distribution."""
    rng = np.random.default_rng(seed)
    calibrated = rng.normal(size=(n, classes)) * 1.5
    p = np.exp(calibrated) / np.exp(calibrated).sum(1, keepdims=True)
    targets = np.array([rng.choice(classes, p=row) for row in p])
    return calibrated * 3.0, targets


def test_fit_temperature_recovers_the_true_temperature_and_lowers_the_nll():
    logits, targets = overconfident()
    t = fit_temperature(logits, targets)
    assert 2.6 < t < 3.4
    assert negative_log_likelihood(logits, targets, t) < negative_log_likelihood(logits, targets) - 0.1


def test_temperature_scaling_lowers_ece_and_keeps_the_argmax():
    logits, targets = overconfident()
    t = fit_temperature(logits, targets)
    before, after = apply_temperature(logits, 1.0), apply_temperature(logits, t)
    assert expected_calibration_error(after, targets) < expected_calibration_error(before, targets) / 2
    np.testing.assert_array_equal(before.argmax(1), after.argmax(1))


def test_log_probabilities_fit_the_same_temperature_as_logits():
    logits, targets = overconfident(500)
    probs = apply_temperature(logits, 1.0)
    assert fit_temperature(log_probabilities(probs), targets) == pytest.approx(fit_temperature(logits, targets), rel=1e-3)


def test_ece_is_zero_for_perfect_confidence_and_the_gap_otherwise():
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probs, np.array([0, 1])) == 0.0
    # always 0.9 sure, right half the time: the gap is 0.4
    probs = np.tile([0.9, 0.1], (10, 1))
    targets = np.array([0, 1] * 5)
    assert expected_calibration_error(probs, targets) == pytest.approx(0.4)
    bins = reliability_bins(probs, targets)
    assert bins["count"] == [10] and bins["accuracy"] == [0.5] and bins["confidence"] == [pytest.approx(0.9)]


def test_rejection_threshold_turns_away_at_most_the_stated_share():
    scores = np.linspace(0.01, 1.0, 100)
    threshold = rejection_threshold(scores, 0.05)
    assert (scores < threshold).mean() <= 0.05
    assert (scores < threshold).mean() >= 0.04
    assert rejection_threshold(scores, 0.0) == 0.0 and rejection_threshold(np.array([]), 0.05) == 0.0
    with pytest.raises(ValueError, match="false_rejection"):
        rejection_threshold(scores, 1.0)


def test_fit_temperature_refuses_bad_input():
    with pytest.raises(ValueError, match="targets"):
        fit_temperature(np.zeros((3, 2)), np.zeros(2, int))
    with pytest.raises(ValueError, match="finite"):
        fit_temperature(np.array([[np.nan, 0.0]]), np.array([0]))
    assert fit_temperature(np.zeros((0, 2)), np.zeros(0, int)) == 1.0


def test_calibrate_and_pooled_calibration_agree_on_the_temperature_they_undo():
    logits, targets = overconfident(1000)
    fold = calibrate(logits, targets, "held out")
    assert fold["ece_after"] < fold["ece_before"] and fold["source"] == "held out" and fold["n"] == 1000
    calibrated = apply_temperature(logits, fold["temperature"])
    pooled = pooled_calibration({1: calibrated}, {1: targets}, {1: fold, 2: None})
    assert pooled["ece_before"] == pytest.approx(fold["ece_before"], abs=2e-3)
    assert pooled["ece_after"] == pytest.approx(fold["ece_after"], abs=2e-3)
    assert pooled["temperatures"] == {"1": fold["temperature"]} and pooled["folds"] == [1]
    assert 0.03 <= pooled["test_rejected"] <= 0.07  # the same distribution: about the 5 % chosen
    assert pooled_calibration({1: calibrated}, {1: targets}, {1: None}) is None


@pytest.mark.parametrize("name", ["paper_cnn", "paper_cnn_gap"])
def test_fold_temperature_divides_the_logits(name):
    model = create_model(name, num_classes=3, input_size=(32, 32)).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        before = model(x)
        model.fold_temperature(2.5)
        after = model(x)
    torch.testing.assert_close(after, before / 2.5, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="> 0"):
        model.fold_temperature(0.0)
