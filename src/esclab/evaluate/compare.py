"""Runs side by side: ``compare_runs([RUN, RUN, ...], out)`` writes one HTML page and its JSON.

Shows mean +- std accuracy per run, per-class accuracy (recall) across runs, and paired tests
(t-test and Wilcoxon signed-rank, scipy) on the accuracies of the folds each pair of runs shares.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ttest_rel, wilcoxon

from esclab import __version__
from esclab import metrics as M
from esclab.errors import EsclabError
from esclab.evaluate.page import Figures, Section, render, table_from_frame, write_json
from esclab.evaluate.plots import grouped_bar_figure, value_grid_figure
from esclab.runs import Run, load_run

CAVEAT = ("Caveat: with n = 5 folds or fewer these tests have little power. A two-sided Wilcoxon signed-rank "
          "test on 5 pairs cannot give p below 0.0625, and the folds are not independent samples (each model's "
          "training sets overlap), so read the p-values as a rough guide, not as proof of a difference.")


class CompareError(EsclabError, ValueError):
    """Runs that cannot be compared; the message says how they differ."""


@dataclass
class CompareResult:
    """Where the comparison went."""

    html: Path
    json: Path


def run_labels(runs: list[Run]) -> list[str]:
    """Each run's folder name, prefixed by its parent folder where two names clash."""
    names = [r.name for r in runs]
    return [f"{r.path.parent.name}/{r.name}" if names.count(r.name) > 1 else r.name for r in runs]


def paired_tests(a: dict[int, float], b: dict[int, float]) -> dict[str, Any]:
    """Paired t-test and Wilcoxon signed-rank test of ``b - a`` over the folds both have.

    Returns:
        ``folds``, ``n``, ``mean_difference``, ``t``, ``t_p``, ``wilcoxon``, ``wilcoxon_p`` (``None``
        where a test is undefined: fewer than 2 folds, or differences all equal / all zero) and ``note``.
    """
    folds = sorted(set(a) & set(b))
    diff = np.array([b[f] - a[f] for f in folds])
    result: dict[str, Any] = {"folds": folds, "n": len(folds), "mean_difference": float(diff.mean()) if len(diff)
                              else None, "t": None, "t_p": None, "wilcoxon": None, "wilcoxon_p": None, "note": ""}
    if len(folds) < 2:
        result["note"] = "fewer than 2 shared folds: no test"
    elif np.ptp(diff) == 0:
        result["note"] = "the difference is the same on every fold: tests undefined"
    else:
        t = ttest_rel(np.array([b[f] for f in folds]), np.array([a[f] for f in folds]))
        w = wilcoxon(diff)
        result.update(t=float(t.statistic), t_p=float(t.pvalue), wilcoxon=float(w.statistic),
                      wilcoxon_p=float(w.pvalue))
    return result


def test_set_differences(runs: list[Run], labels: list[str], shown: int = 5) -> list[str]:
    """How the runs' pooled test clips differ from the first run's (empty: the same clips)."""
    reference = set(runs[0].pooled["clip_id"].astype(str))
    lines = []
    for label, run in zip(labels[1:], runs[1:], strict=True):
        clips = set(run.pooled["clip_id"].astype(str))
        if clips == reference:
            continue
        extra, absent = sorted(clips - reference), sorted(reference - clips)
        lines.append(f"{label} (folds {run.folds}) vs {labels[0]} (folds {runs[0].folds}): "
                     f"{len(extra)} test clip(s) only in {label} {extra[:shown]}, "
                     f"{len(absent)} only in {labels[0]} {absent[:shown]}")
    return lines


def compare_runs(run_dirs: list[str | Path], out: str | Path, allow_different_tests: bool = False) -> CompareResult:
    """Compare finished runs on the same classes and the same test clips.

    Args:
        run_dirs: two or more run folders.
        out: HTML path; the JSON goes beside it with ``.json``.
        allow_different_tests: compare runs whose test clips differ (other folds, skipped clips); the
            page then says how they differ.

    Raises:
        RunNotFoundError: a folder is not a finished run.
        CompareError: fewer than two runs, runs over different classes, or (unless
            ``allow_different_tests``) over different test clips; the message says how they differ.
    """
    if len(run_dirs) < 2:
        raise CompareError("compare needs at least two runs")
    runs = [load_run(d) for d in run_dirs]
    if any(r.class_names != runs[0].class_names for r in runs):
        raise CompareError("the runs classify different class lists; compare runs on the same dataset")
    labels = run_labels(runs)
    differences = test_set_differences(runs, labels)
    if differences and not allow_different_tests:
        raise CompareError("the runs were tested on different clips, so their numbers are not comparable: "
                         + "; ".join(differences) + ". Pass --allow-different-tests to compare them anyway")
    figures = Figures()
    sections = [accuracy_section(runs, labels, figures), per_class_section(runs, labels, figures),
                tests_section(runs, labels)]
    if differences:
        sections[0].text.insert(0, "Warning: the runs were tested on different clips: " + "; ".join(differences)
                                + ".")
    out = Path(out)
    generated = f"{datetime.now():%Y-%m-%d %H:%M}"
    render(out, f"Comparison of {len(runs)} runs", f"generated {generated} by esclab {__version__}", sections,
           figures, [("Run folders", "\n".join(f"{label}: {r.path.resolve()}" for label, r in zip(labels, runs,
                                                                                                  strict=True)))])
    json_path = write_json({"runs": dict(zip(labels, [str(r.path.resolve()) for r in runs], strict=True)),
                            "test_set_differences": differences, "generated": generated, "figures": figures.numbers,
                            "sections": {s.anchor: s.data for s in sections}}, out.with_suffix(".json"))
    return CompareResult(out, json_path)


def accuracy_section(runs: list[Run], labels: list[str], figures: Figures) -> Section:
    """Mean +- std accuracy and macro-F1 per run, and accuracy per fold."""
    table = pd.DataFrame({"run": labels, "model": [r.summary.get("model", "") for r in runs],
                          "folds": [len(r.folds) for r in runs],
                          **{k: [r.summary[k] for r in runs] for k in ("accuracy_mean", "accuracy_std",
                                                                       "macro_f1_mean", "macro_f1_std")}})
    numbers = table.to_dict(orient="list")
    key = figures.add("accuracy", grouped_bar_figure(
        labels, {"accuracy": numbers["accuracy_mean"], "macro-F1": numbers["macro_f1_mean"]},
        {"accuracy": numbers["accuracy_std"], "macro-F1": numbers["macro_f1_std"]}, ylabel="score",
        title="Mean ± std over folds", ylim=(0, 1)), numbers)
    folds = sorted({f for r in runs for f in r.folds})
    per_fold = pd.DataFrame({"fold": folds, **{label: [r.fold_metrics(f)["accuracy"] if f in r.folds else np.nan
                                                        for f in folds] for label, r in zip(labels, runs, strict=True)}})
    formats = dict.fromkeys([*table.columns[3:], *labels], ".3f")
    return Section("accuracy", "Accuracy", ["Error bars: sample standard deviation over each run's folds."], [key],
                   [("Per run", table_from_frame(table, formats), True),
                    ("Accuracy per fold", table_from_frame(per_fold.fillna("-"), formats), True)],
                   data={"runs": table.to_dict(orient="records"), "per_fold": per_fold.to_dict(orient="records")})


def per_class_section(runs: list[Run], labels: list[str], figures: Figures) -> Section:
    """Per-class accuracy (recall over the pooled folds) of every run."""
    names = runs[0].class_names
    recall = np.stack([M.per_class_report(r.pooled["target"].to_numpy(), r.pooled["pred"].to_numpy(),
                                          names)["recall"].to_numpy() for r in runs], axis=1)
    key = figures.add("per_class_accuracy", value_grid_figure(recall, names, labels,
                                                               title="Per-class accuracy (recall, folds pooled)"),
                      {"class_names": names, "runs": labels, "accuracy": recall.tolist()})
    table = pd.DataFrame({"class": names, **{label: recall[:, i] for i, label in enumerate(labels)},
                          "spread": recall.max(axis=1) - recall.min(axis=1)})
    return Section("per-class", "Per-class accuracy",
                   ["'spread' is the best run's accuracy minus the worst's; sort by it to find the classes where "
                    "the runs differ most."], [key],
                   [("Per class", table_from_frame(table, dict.fromkeys(table.columns[1:], ".3f")), True)],
                   data={"classes": table.to_dict(orient="records")})


def tests_section(runs: list[Run], labels: list[str]) -> Section:
    """Paired tests on fold accuracies for every pair of runs."""
    rows = []
    for (la, ra), (lb, rb) in itertools.combinations(zip(labels, runs, strict=True), 2):
        acc = [{f: r.fold_metrics(f)["accuracy"] for f in r.folds} for r in (ra, rb)]
        rows.append({"run A": la, "run B": lb, **paired_tests(*acc)})
    table = pd.DataFrame(rows).drop(columns="folds").rename(columns={"mean_difference": "mean B - A"})
    formats = {"mean B - A": "+.3f", "t": ".2f", "t_p": ".3g", "wilcoxon": ".1f", "wilcoxon_p": ".3g"}
    return Section("tests", "Paired tests over folds",
                   ["Paired t-test and Wilcoxon signed-rank test (two-sided, scipy) on the test accuracy of each fold "
                    "both runs share.", CAVEAT],
                   tables=[("Run pairs", table_from_frame(table.fillna("-"), formats), True)], data={"pairs": rows})
