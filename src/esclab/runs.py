"""The run folder: the one module that knows its layout, writes its shared files and reads a run back.

::

    RUN/config.yaml              the resolved ExperimentConfig
    RUN/env.json                 provenance: commit, versions, machine, argv and times of each session
    RUN/summary.json             per-fold metrics, mean +- std, pooled numbers
    RUN/skipped_files.csv        clips that could not be read (path, reason, fold)
    RUN/confusion_matrix.csv/png, RUN/per_class_report.csv
    RUN/MODEL_CARD.md            the model card (:mod:`esclab.model_card`)
    RUN/fold_K/metrics.json      the fold's numbers; its presence marks the fold done
    RUN/fold_K/predictions.csv   per-clip probabilities of the test fold
    RUN/fold_K/split.csv         clip_id, role (train / val or calibration / test): the fold's split, for anyone to check
    RUN/fold_K/model.ckpt        the bundle (:mod:`esclab.bundle`)
    RUN/fold_K/checkpoints/last.ckpt, RUN/fold_K/logs/metrics.csv   Lightning's checkpoint and log

:func:`esclab.train.cv.run_cv` writes it, :mod:`esclab.evaluate` reads it with :func:`load_run`, and
:mod:`esclab.inference` picks a bundle from it with :func:`resolve_checkpoint`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from esclab.bundle import Bundle, BundleError, load_bundle
from esclab.errors import EsclabError
from esclab.fsutil import atomic_write

if TYPE_CHECKING:  # pandas costs 0.4 s to import: predict and serve, which only resolve checkpoints, skip it
    import pandas as pd

FOLD_DIR = re.compile(r"fold_(\d+)")


class RunNotFoundError(EsclabError, FileNotFoundError):
    """The folder is not a finished run, or a file of it is missing; the message says which."""


@dataclass(frozen=True)
class FoldDir:
    """Paths inside ``RUN/fold_K``."""

    path: Path

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def predictions(self) -> Path:
        return self.path / "predictions.csv"

    @property
    def bundle(self) -> Path:
        return self.path / "model.ckpt"

    @property
    def split(self) -> Path:
        return self.path / "split.csv"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def logs(self) -> Path:
        """Lightning's CSV log folder (``CSVLogger(fold_dir, name="logs", version="")``)."""
        return self.path / "logs"

    @property
    def log_csv(self) -> Path:
        return self.logs / "metrics.csv"

    @property
    def log_before_resume(self) -> Path:
        """Rows of ``log_csv`` from sessions before a resume, while the resumed fit runs."""
        return self.path / "metrics-before-resume.csv"

    def is_done(self) -> bool:
        """A fold is done once its ``metrics.json`` (written last, atomically) holds a JSON object.

        A truncated one, as a write in place killed midway leaves, does not count: the fold runs again.
        """
        try:
            return isinstance(json.loads(self.metrics.read_text()), dict)
        except (OSError, ValueError):
            return False


@dataclass(frozen=True)
class RunDir:
    """Paths of a run folder."""

    path: Path

    def fold(self, k: int) -> FoldDir:
        return FoldDir(self.path / f"fold_{k}")

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def skipped(self) -> Path:
        return self.path / "skipped_files.csv"

    @property
    def env(self) -> Path:
        return self.path / "env.json"

    @property
    def confusion_csv(self) -> Path:
        return self.path / "confusion_matrix.csv"

    @property
    def confusion_png(self) -> Path:
        return self.path / "confusion_matrix.png"

    @property
    def per_class(self) -> Path:
        return self.path / "per_class_report.csv"

    @property
    def model_card(self) -> Path:
        return self.path / "MODEL_CARD.md"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """``data`` as indented JSON, written atomically."""
    atomic_write(path, json.dumps(data, indent=2))


def write_csv(path: Path, frame: pd.DataFrame, **to_csv: Any) -> None:
    """``frame.to_csv(**to_csv)``, written atomically."""
    atomic_write(path, frame.to_csv(**to_csv))


def write_split(path: Path, clip_ids: pd.Series, roles: dict[str, np.ndarray]) -> None:
    """``split.csv``: ``clip_id, role`` for every clip of the fold's split (train / val or calibration / test)."""
    import pandas as pd
    frames = [pd.DataFrame({"clip_id": clip_ids.iloc[idx].to_numpy(), "role": role}) for role, idx in roles.items()]
    write_csv(path, pd.concat(frames, ignore_index=True), index=False)


def write_skipped(path: Path, skipped: list[tuple[str, str, int]]) -> pd.DataFrame:
    """Add ``skipped`` (path, reason, fold) to ``skipped_files.csv``; earlier sessions' rows stay."""
    import pandas as pd
    new = pd.DataFrame(skipped, columns=["path", "reason", "fold"])
    old = pd.read_csv(path) if path.is_file() and path.stat().st_size else new.iloc[:0]
    both = pd.concat([old, new], ignore_index=True).drop_duplicates(["path", "reason"], keep="first")
    write_csv(path, both, index=False)
    return both


def set_log_aside(fold: FoldDir, before_step: int) -> None:
    """Before a fit resumes at ``before_step``: keep the log rows of earlier steps aside.

    Lightning's CSVLogger starts ``metrics.csv`` anew on every fit; the rows written before the
    checkpoint go to ``metrics-before-resume.csv`` (rows after it are redone by the resumed fit),
    and :func:`join_log` puts them back in front once the fit ends.
    """
    import pandas as pd
    frames = [pd.read_csv(p) for p in (fold.log_before_resume, fold.log_csv) if p.is_file() and p.stat().st_size]
    if not frames:
        return
    rows = pd.concat(frames, ignore_index=True)
    write_csv(fold.log_before_resume, rows[rows["step"] < before_step], index=False)
    fold.log_csv.unlink(missing_ok=True)
    (fold.logs / "hparams.yaml").unlink(missing_ok=True)  # rewritten by the fit


def join_log(fold: FoldDir) -> None:
    """After a resumed fit: ``metrics.csv`` = the rows set aside + the resumed fit's rows."""
    import pandas as pd
    if not fold.log_before_resume.is_file():
        return
    frames = [pd.read_csv(p) for p in (fold.log_before_resume, fold.log_csv) if p.is_file() and p.stat().st_size]
    write_csv(fold.log_csv, pd.concat(frames, ignore_index=True), index=False)
    fold.log_before_resume.unlink()


def write_predictions(path: Path, test: pd.DataFrame, probs: np.ndarray, class_names: list[str]) -> None:
    """``predictions.csv``: the test clips' columns, the predicted class, its confidence and every probability."""
    import pandas as pd
    pred = probs.argmax(axis=1)
    frame = test[["path", "clip_id", "fold", "target", "label"]].copy()
    frame["pred"] = pred
    frame["pred_label"] = [class_names[i] for i in pred]
    frame["confidence"] = probs.max(axis=1)
    prob_cols = pd.DataFrame(probs, columns=[f"p_{i}" for i in range(probs.shape[1])])
    write_csv(path, pd.concat([frame, prob_cols], axis=1), index=False, float_format="%.6g")


@dataclass
class Run:
    """A finished run: its summary, resolved config and per-fold predictions; bundles load on demand.

    Attributes:
        path: the run folder.
        summary: ``summary.json``.
        config_text: ``config.yaml`` as written.
        predictions: fold -> that fold's ``predictions.csv``.
        skipped: ``skipped_files.csv`` (``path, reason, fold``).
        env: ``env.json`` (provenance; empty for runs written before it existed).
    """

    path: Path
    summary: dict[str, Any]
    config_text: str
    predictions: dict[int, pd.DataFrame]
    skipped: pd.DataFrame
    env: dict[str, Any] = field(default_factory=dict)
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
        import pandas as pd
        return pd.concat([self.predictions[k] for k in self.folds], ignore_index=True)

    @cached_property
    def confusion(self) -> np.ndarray:
        """The pooled confusion matrix (rows true, columns predicted), as ``run_cv`` wrote it once.

        Computed from the pooled predictions only for a folder without ``confusion_matrix.csv``.
        """
        import pandas as pd
        path = RunDir(self.path).confusion_csv
        if path.is_file():
            frame = pd.read_csv(path, index_col=0)
            if list(frame.columns) == self.class_names:
                return frame.to_numpy()
        from sklearn.metrics import confusion_matrix

        return confusion_matrix(self.pooled["target"], self.pooled["pred"], labels=np.arange(len(self.class_names)))

    def fold_metrics(self, fold: int) -> dict[str, Any]:
        return self.summary["folds"][str(fold)]

    def bundle(self, fold: int) -> Bundle:
        """The model trained for ``fold`` (``fold_K/model.ckpt``), loaded once."""
        if fold not in self._bundles:
            self._bundles[fold] = load_bundle(RunDir(self.path).fold(fold).bundle)
        return self._bundles[fold]

    def training_log(self, fold: int) -> pd.DataFrame | None:
        """Per-epoch means of Lightning's ``fold_K/logs/metrics.csv``, or ``None`` without a log."""
        import pandas as pd
        path = RunDir(self.path).fold(fold).log_csv
        if not path.is_file():
            return None
        log = pd.read_csv(path).dropna(subset=["epoch"])
        return log.groupby("epoch").mean(numeric_only=True).reset_index()


def load_run(path: str | Path) -> Run:
    """Read ``summary.json``, ``config.yaml``, ``skipped_files.csv`` and each fold's predictions.

    Raises:
        RunNotFoundError: ``path`` is not a finished run (no ``summary.json``) or a fold's
            ``predictions.csv`` is missing.
    """
    import pandas as pd
    path = Path(path)
    layout = RunDir(path)
    summary_file = layout.summary
    if not summary_file.is_file():
        raise RunNotFoundError(f"{path} is not a finished run: no summary.json (run `esclab cv` first)")
    summary = json.loads(summary_file.read_text())
    predictions = {}
    for fold in summary["folds"]:
        file = layout.fold(int(fold)).predictions
        if not file.is_file() and file.with_suffix(".csv.gz").is_file():  # a published copy, gzip'd
            file = file.with_suffix(".csv.gz")
        if not file.is_file():
            raise RunNotFoundError(f"{file} is missing; the run is incomplete")
        predictions[int(fold)] = pd.read_csv(file)
    config, skipped, env = layout.config, layout.skipped, layout.env
    return Run(path=path, summary=summary, config_text=config.read_text() if config.is_file() else "",
               predictions=predictions,
               skipped=pd.read_csv(skipped) if skipped.is_file() else pd.DataFrame(columns=["path", "reason", "fold"]),
               env=json.loads(env.read_text()) if env.is_file() else {})


def _fold_accuracy(fold_dir: Path, summary: dict) -> float | None:
    """The fold's test accuracy from ``fold_K/metrics.json``, else from the run's ``summary.json``."""
    metrics = FoldDir(fold_dir).metrics
    if metrics.is_file():
        return json.loads(metrics.read_text()).get("accuracy")
    fold = FOLD_DIR.fullmatch(fold_dir.name).group(1)
    return summary.get("folds", {}).get(fold, {}).get("accuracy")


def resolve_checkpoint(path: str | Path) -> Path:
    """The bundle file for ``path``.

    Args:
        path: a bundle file, or a cross-validation run folder holding ``fold_K/model.ckpt``.

    Returns:
        ``path`` itself for a file; for a run folder the bundle of the fold with the best
        test accuracy (folds without a recorded accuracy rank last, ties go to the lowest fold).

    Raises:
        BundleError: a folder with no ``fold_K/model.ckpt``.
    """
    path = Path(path)
    if not path.is_dir():
        return path
    summary_file = RunDir(path).summary
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    folds = sorted((d for d in path.iterdir() if FOLD_DIR.fullmatch(d.name) and FoldDir(d).bundle.is_file()),
                   key=lambda d: int(d.name.split("_")[1]))
    if not folds:
        raise BundleError(f"{path}: a folder, but no fold_K/model.ckpt in it (not a finished run)")

    def rank(fold_dir: Path) -> tuple[bool, float]:
        accuracy = _fold_accuracy(fold_dir, summary)
        return accuracy is not None, accuracy or 0.0

    return FoldDir(max(folds, key=rank)).bundle  # max keeps the first (lowest) fold on ties
