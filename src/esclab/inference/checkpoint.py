"""Which bundle a ``--checkpoint`` argument means: a ``.ckpt`` file, or a run folder's best fold."""

from __future__ import annotations

import json
import re
from pathlib import Path

from esclab.train.bundle import BundleError

_FOLD_DIR = re.compile(r"fold_(\d+)")


def _fold_accuracy(fold_dir: Path, summary: dict) -> float | None:
    """The fold's test accuracy from ``fold_K/metrics.json``, else from the run's ``summary.json``."""
    metrics = fold_dir / "metrics.json"
    if metrics.is_file():
        return json.loads(metrics.read_text()).get("accuracy")
    fold = _FOLD_DIR.fullmatch(fold_dir.name).group(1)
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
    summary_file = path / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    folds = sorted((d for d in path.iterdir() if _FOLD_DIR.fullmatch(d.name) and (d / "model.ckpt").is_file()),
                   key=lambda d: int(d.name.split("_")[1]))
    if not folds:
        raise BundleError(f"{path}: a folder, but no fold_K/model.ckpt in it (not a finished run)")

    def rank(fold_dir: Path) -> tuple[bool, float]:
        accuracy = _fold_accuracy(fold_dir, summary)
        return accuracy is not None, accuracy or 0.0

    return max(folds, key=rank) / "model.ckpt"  # max keeps the first (lowest) fold on ties
