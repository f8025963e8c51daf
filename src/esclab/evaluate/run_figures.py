"""The pictures of a run folder, drawn from the numbers training wrote: ``draw_run_figures(run_dir)``.

Training writes numbers only (``summary.json``, ``confusion_matrix.csv``, ...); the CLI calls this after
``run_cv`` or ``ensemble_runs``, and a library caller gets the same files by calling it too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from esclab.evaluate.plots import confusion_figure, save
from esclab.runs import RunDir


def draw_run_figures(run_dir: str | Path) -> list[Path]:
    """Draw ``confusion_matrix.png`` (pooled over the run's folds) from ``confusion_matrix.csv``.

    Returns:
        The files written.

    Raises:
        FileNotFoundError: the folder holds no finished run (no ``summary.json``).
    """
    run = RunDir(Path(run_dir))
    if not run.summary.is_file():
        raise FileNotFoundError(f"{run.path} holds no finished run (no summary.json)")
    summary = json.loads(run.summary.read_text())
    matrix = pd.read_csv(run.confusion_csv, index_col=0)
    title = f"{summary['name']}: pooled over folds {sorted(int(k) for k in summary['folds'])}"
    save(confusion_figure(matrix.to_numpy(), list(matrix.columns), title=title), run.confusion_png)
    return [run.confusion_png]
