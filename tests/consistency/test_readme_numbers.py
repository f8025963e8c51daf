"""README's measured table cannot drift from its evidence.

Every ``NN.N ± S.S %`` accuracy in the table names its run folder (``docs/results/NAME/`` or
``docs/example-run/``), whose per-fold ``predictions.csv.gz`` recompute the mean and the sample standard
deviation (and the per-fold figures listed in parentheses); ``summary.json`` agrees. A row whose run is
gone says "not re-derivable", and at most three rows may.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
FIGURE = re.compile(r"(\d+\.\d) ± (\d+\.\d) %")
EVIDENCE = re.compile(r"`?(docs/(?:results/[\w+.-]+|example-run))/?`?")
PER_FOLD = re.compile(r"\((\d+(?:\.\d+)?(?: / \d+(?:\.\d+)?){4})\)")


def measured_rows() -> list[str]:
    """The rows of README's "Measured" table that hold an accuracy ``NN.N ± S.S %``."""
    section = (ROOT / "README.md").read_text().split("## Measured", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and FIGURE.search(line)]


def rounds_to(value: float, shown: float) -> bool:
    """``shown`` is ``value`` rounded to one decimal (either way at an exact half: 94.05 may show as 94.0 or 94.1)."""
    return abs(value - shown) <= 0.05 + 1e-9


def fold_accuracies(run: Path) -> dict[int, float]:
    """Accuracy per fold recomputed from ``fold_K/predictions.csv(.gz)``."""
    out = {}
    for fold_dir in sorted(run.glob("fold_*")):
        files = sorted(fold_dir.glob("predictions.csv*"))
        assert files, f"{fold_dir} has no predictions"
        table = pd.read_csv(files[0])
        out[int(fold_dir.name.split("_")[1])] = float((table["pred"] == table["target"]).mean())
    return out


def test_the_table_has_rows_to_check():
    assert len(measured_rows()) >= 4


def test_at_most_three_rows_are_not_rederivable():
    assert sum("not re-derivable" in row for row in measured_rows()) <= 3


@pytest.mark.parametrize("row", measured_rows(), ids=lambda row: row.split("|")[1].strip()[:40])
def test_each_figure_recomputes_from_its_run(row: str):
    if "not re-derivable" in row:
        return  # counted by test_at_most_three_rows_are_not_rederivable
    evidence = EVIDENCE.search(row)
    assert evidence, f"no run folder named in: {row[:120]}"
    run = ROOT / evidence.group(1)
    accuracies = fold_accuracies(run)
    assert sorted(accuracies) == [1, 2, 3, 4, 5], f"{run}: folds {sorted(accuracies)}"
    values = np.array([accuracies[k] for k in sorted(accuracies)]) * 100
    mean, std = (float(v) for v in FIGURE.search(row).groups())
    assert rounds_to(values.mean(), mean) and rounds_to(values.std(ddof=1), std), (run, values)
    summary = json.loads((run / "summary.json").read_text())
    assert rounds_to(100 * summary["accuracy_mean"], mean) and rounds_to(100 * summary["accuracy_std"], std)
    listed = PER_FOLD.search(row)
    if listed:
        figures = [float(v) for v in listed.group(1).split(" / ")]
        assert np.allclose(figures, values, atol=0.051), (figures, values)
