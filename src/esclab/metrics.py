"""Classification metrics on fixed predictions, by scikit-learn's definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


def fold_metrics(target: np.ndarray, pred: np.ndarray, num_classes: int) -> dict[str, float]:
    """Accuracy and macro-F1 over the classes ``0..num_classes-1``."""
    labels = np.arange(num_classes)
    present = np.union1d(np.unique(target), np.unique(pred))
    return {
        "accuracy": float(accuracy_score(target, pred)),
        "macro_f1": float(f1_score(target, pred, labels=np.intersect1d(labels, present), average="macro",
                                   zero_division=0)),
        "n_test": int(len(target)),
    }


def confusion(target: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``(C, C)`` counts, rows = true class, columns = predicted class."""
    return confusion_matrix(target, pred, labels=np.arange(num_classes))


def per_class_report(target: np.ndarray, pred: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class (zero when a class is never predicted)."""
    p, r, f, s = precision_recall_fscore_support(target, pred, labels=np.arange(len(class_names)), zero_division=0)
    return pd.DataFrame({"class": class_names, "precision": p, "recall": r, "f1": f, "support": s})


def top_confusions(matrix: np.ndarray, class_names: list[str], k: int = 10) -> pd.DataFrame:
    """The ``k`` largest off-diagonal cells: true, predicted, count."""
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(off, axis=None)[::-1][:k]
    rows = [(class_names[i], class_names[j], int(off[i, j])) for i, j in zip(*np.unravel_index(flat, off.shape), strict=True)
            if off[i, j] > 0]
    return pd.DataFrame(rows, columns=["true", "predicted", "count"])


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value)."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def prediction_bias(target: np.ndarray, pred: np.ndarray, class_names: list[str], ratio: float = 0.5,
                    alpha: float = 0.05) -> pd.DataFrame:
    """How often each class is predicted against how often it is true, with over/under flags.

    A class is flagged ``"over"`` (or ``"under"``) when both hold:

    * its predicted count exceeds (falls short of) its true count by more than ``ratio``
      of the true count (0.5: beyond +-50%), and
    * a two-sided exact binomial test rejects, at level ``alpha``, that predictions hit the
      class at its true frequency: predicted count ~ Binomial(N, true count / N).

    The ratio rule ignores small but significant swings on large test sets; the test ignores
    large relative swings on a handful of clips.

    Returns:
        Columns ``class, true, predicted, ratio`` (predicted / true; inf when the class is
        absent but predicted), ``p_value`` and ``flag`` (``"over"``, ``"under"`` or ``""``).
    """
    n = len(class_names)
    true = np.bincount(target, minlength=n)
    predicted = np.bincount(pred, minlength=n)
    total = int(true.sum())
    rows = []
    for name, t, p in zip(class_names, true, predicted, strict=True):
        rel = p / t if t else (np.inf if p else 1.0)
        p_value = binomtest(int(p), total, t / total).pvalue if total else 1.0
        flag = ""
        if p_value < alpha and abs(rel - 1.0) > ratio:
            flag = "over" if p > t else "under"
        rows.append((name, int(t), int(p), float(rel), float(p_value), flag))
    return pd.DataFrame(rows, columns=["class", "true", "predicted", "ratio", "p_value", "flag"])
