"""Classification metrics on fixed predictions, by scikit-learn's definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
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
    rows = [(class_names[i], class_names[j], int(off[i, j])) for i, j in zip(*np.unravel_index(flat, off.shape))
            if off[i, j] > 0]
    return pd.DataFrame(rows, columns=["true", "predicted", "count"])


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value)."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
