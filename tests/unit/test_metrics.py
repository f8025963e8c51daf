"""Metrics against scikit-learn on fixed predictions, and the prediction-bias flags."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from esclab import metrics as M

NAMES = ["a", "b", "c", "d"]


@pytest.fixture
def fixed() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    target = rng.integers(0, 4, 60)
    pred = np.where(rng.random(60) < 0.6, target, rng.integers(0, 4, 60))
    return target, pred


def test_fold_metrics_equal_sklearn(fixed):
    target, pred = fixed
    m = M.fold_metrics(target, pred, len(NAMES))
    assert m["accuracy"] == pytest.approx(accuracy_score(target, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(target, pred, average="macro"))
    assert m["n_test"] == 60


def test_per_class_report_equals_sklearn(fixed):
    target, pred = fixed
    report = M.per_class_report(target, pred, NAMES)
    p, r, f, s = precision_recall_fscore_support(target, pred, labels=range(4), zero_division=0)
    np.testing.assert_allclose(report[["precision", "recall", "f1"]].to_numpy(), np.stack([p, r, f], axis=1))
    np.testing.assert_array_equal(report["support"], s)


def test_confusion_sums_to_clips_and_rows_to_support(fixed):
    target, pred = fixed
    matrix = M.confusion(target, pred, len(NAMES))
    assert matrix.sum() == len(target)
    np.testing.assert_array_equal(matrix.sum(axis=1), np.bincount(target, minlength=4))
    np.testing.assert_array_equal(matrix.sum(axis=0), np.bincount(pred, minlength=4))


def test_bias_flags_a_class_predicted_too_often():
    target = np.repeat(np.arange(4), 25)
    pred = target.copy()
    pred[:20] = 3  # 20 of class a's clips go to d: d predicted 45 times for 25 true
    bias = M.prediction_bias(target, pred, NAMES).set_index("class")
    assert bias.loc["d", "flag"] == "over"
    assert bias.loc["d", "predicted"] == 45 and bias.loc["d", "true"] == 25
    assert bias.loc["a", "flag"] == "under"
    assert bias.loc[["b", "c"], "flag"].tolist() == ["", ""]


def test_bias_ignores_a_small_swing_and_handles_an_absent_class():
    target = np.repeat(np.arange(3), 30)
    pred = target.copy()
    pred[:5] = 1  # 35 predicted for 30 true: within 50 %
    bias = M.prediction_bias(target, pred, NAMES).set_index("class")
    assert (bias.loc[["a", "b", "c"], "flag"] == "").all()
    assert bias.loc["d", "true"] == 0 and bias.loc["d", "flag"] == ""
    pred[:10] = 3  # never true, predicted 10 times
    absent = M.prediction_bias(target, pred, NAMES).set_index("class").loc["d"]
    assert absent["ratio"] == np.inf and absent["flag"] == "over"
