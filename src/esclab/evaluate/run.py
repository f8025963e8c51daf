"""Read a finished run folder (the layout :func:`esclab.train.cv.run_cv` writes) without retraining."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from esclab.train.bundle import Bundle, load_bundle


@dataclass
class Run:
    """A finished run: its summary, resolved config and per-fold predictions; bundles load on demand.

    Attributes:
        path: the run folder.
        summary: ``summary.json``.
        config_text: ``config.yaml`` as written.
        predictions: fold -> that fold's ``predictions.csv``.
        skipped: ``skipped_files.csv`` (``path, reason``).
    """

    path: Path
    summary: dict[str, Any]
    config_text: str
    predictions: dict[int, pd.DataFrame]
    skipped: pd.DataFrame
    _bundles: dict[int, Bundle] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def class_names(self) -> list[str]:
        return list(self.summary["class_names"])

    @property
    def folds(self) -> list[int]:
        return sorted(self.predictions)

    @cached_property
    def pooled(self) -> pd.DataFrame:
        """Every fold's predictions in one frame (test clips of all folds run)."""
        return pd.concat([self.predictions[k] for k in self.folds], ignore_index=True)

    def fold_metrics(self, fold: int) -> dict[str, Any]:
        return self.summary["folds"][str(fold)]

    def bundle(self, fold: int) -> Bundle:
        """The model trained for ``fold`` (``fold_K/model.ckpt``), loaded once."""
        if fold not in self._bundles:
            self._bundles[fold] = load_bundle(self.path / f"fold_{fold}" / "model.ckpt")
        return self._bundles[fold]

    def training_log(self, fold: int) -> pd.DataFrame | None:
        """Per-epoch means of Lightning's ``fold_K/logs/metrics.csv``, or ``None`` without a log."""
        path = self.path / f"fold_{fold}" / "logs" / "metrics.csv"
        if not path.is_file():
            return None
        log = pd.read_csv(path).dropna(subset=["epoch"])
        return log.groupby("epoch").mean(numeric_only=True).reset_index()


def load_run(path: str | Path) -> Run:
    """Read ``summary.json``, ``config.yaml``, ``skipped_files.csv`` and each fold's predictions.

    Raises:
        FileNotFoundError: ``path`` is not a finished run (no ``summary.json``) or a fold's
            ``predictions.csv`` is missing.
    """
    path = Path(path)
    summary_file = path / "summary.json"
    if not summary_file.is_file():
        raise FileNotFoundError(f"{path} is not a finished run: no summary.json (run `esclab cv` first)")
    summary = json.loads(summary_file.read_text())
    predictions = {}
    for fold in summary["folds"]:
        file = path / f"fold_{fold}" / "predictions.csv"
        if not file.is_file():
            raise FileNotFoundError(f"{file} is missing; the run is incomplete")
        predictions[int(fold)] = pd.read_csv(file)
    config = path / "config.yaml"
    skipped = path / "skipped_files.csv"
    return Run(path=path, summary=summary, config_text=config.read_text() if config.is_file() else "",
               predictions=predictions,
               skipped=pd.read_csv(skipped) if skipped.is_file() else pd.DataFrame(columns=["path", "reason"]))
