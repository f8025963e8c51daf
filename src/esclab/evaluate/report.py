"""The run report: ``build_report(run_dir)`` writes one self-contained ``report.html`` and its ``report.json``.

Everything comes from the finished run folder (predictions, fold bundles, logs, summary); nothing
is retrained. Images are base64 PNGs and audio base64 Ogg Vorbis inside the one HTML file, and
``report.json`` holds the numbers behind every figure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from esclab import __version__
from esclab import metrics as M
from esclab.evaluate.clips import load_clips
from esclab.evaluate.gallery import build_gallery, worst_mistakes
from esclab.evaluate.heatmaps import explain
from esclab.evaluate.page import Figures, Section, render, table_from_frame, write_json
from esclab.evaluate.plots import (
    Line,
    LinePanel,
    SpectrogramPanel,
    confusion_figure,
    count_bias_figure,
    grouped_bar_figure,
    line_panels_figure,
    reliability_figure,
    spectrogram_figure,
)
from esclab.evaluate.robustness import RATES, SNRS_DB, robustness_counts, snr_label
from esclab.runs import Run, load_run

SCORE_FORMATS = {"precision": ".3f", "recall": ".3f", "f1": ".3f", "accuracy": ".3f", "macro_f1": ".3f",
                 "ratio": ".2f", "p_value": ".2g", "share": ".2f", "fit_time_s": ".1f"}


@dataclass
class ReportOptions:
    """What to include and how much.

    Attributes:
        robustness: run the noise and speed curves (the slow part: 10 passes over the test folds).
        robustness_clips: clips per fold for the curves, drawn with ``seed``; ``None`` uses all.
        max_gallery: most misclassified clips shown.
        max_heatmaps: most classes in the heatmap grid.
        top_pairs: rows of the top-confused-pairs table.
        seed: seeds clip sampling and noise.
    """

    robustness: bool = True
    robustness_clips: int | None = None
    max_gallery: int = 12
    max_heatmaps: int = 12
    top_pairs: int = 15
    seed: int = 0


@dataclass
class ReportResult:
    """Where the report went."""

    html: Path
    json: Path


def build_report(run_dir: str | Path, out: str | Path | None = None,
                 options: ReportOptions | None = None) -> ReportResult:
    """Rebuild a finished run's report.

    Args:
        run_dir: the run folder.
        out: HTML path (default ``run_dir/report.html``); the JSON goes beside it with ``.json``.
        options: what to include.

    Raises:
        RunNotFoundError: ``run_dir`` is not a finished run.
        esclab.bundle.BundleError: a fold's ``model.ckpt`` is missing or unreadable.
    """
    options = options or ReportOptions()
    run = load_run(run_dir)
    html = Path(out) if out else run.path / "report.html"
    figures = Figures()
    sections = [summary_section(run, figures), training_section(run, figures),
                confusion_section(run, figures, options.top_pairs), per_class_section(run),
                bias_section(run, figures), calibration_section(run, figures), gallery_section(run, options.max_gallery),
                heatmap_section(run, figures, options.max_heatmaps)]
    if options.robustness:
        sections.append(robustness_section(run, figures, options.robustness_clips, options.seed))
    sections.append(provenance_section(run))
    header = {"name": run.summary.get("name", run.name), "model": run.summary.get("model", ""),
              "run": run.name, "commit": run.env.get("commit"), "generated": f"{datetime.now():%Y-%m-%d %H:%M}",
              "esclab_version": __version__}
    commit = f" · commit {header['commit'][:12]}{' + edits' if run.env.get('dirty') else ''}" if header["commit"] else ""
    meta = (f"model {header['model']} · run {header['run']}{commit} · generated {header['generated']} by esclab "
            f"{__version__}")
    render(html, header["name"], meta, sections, figures, [("Resolved config (config.yaml)", run.config_text)])
    calibration = run_calibration(run)
    json_path = write_json({**header, "options": asdict(options), "figures": figures.numbers,
                            "calibration": None if calibration is None else
                            {k: calibration[k] for k in ("ece_before", "ece_after", "temperature")},
                            "sections": {s.anchor: s.data for s in sections}}, html.with_suffix(".json"))
    return ReportResult(html, json_path)


def summary_section(run: Run, figures: Figures) -> Section:
    """Accuracy and macro-F1 per fold, mean +- std, and the skipped files."""
    s = run.summary
    folds = pd.DataFrame([{k: run.fold_metrics(f).get(k) for k in
                           ("fold", "accuracy", "macro_f1", "n_test", "skipped_test_clips", "n_val", "epochs",
                            "tested_epoch", "checkpoint_rule", "truncated", "fit_time_s")}
                          for f in run.folds])
    numbers = {"folds": run.folds, "accuracy": folds["accuracy"].tolist(), "macro_f1": folds["macro_f1"].tolist()}
    key = figures.add("fold_scores", grouped_bar_figure(
        [f"fold {f}" for f in run.folds], {"accuracy": numbers["accuracy"], "macro-F1": numbers["macro_f1"]},
        ylabel="score", title="Test score per fold", ylim=(0, 1)), numbers)
    text = [f"Accuracy {100 * s['accuracy_mean']:.1f} ± {100 * s['accuracy_std']:.1f} %, macro-F1 "
            f"{100 * s['macro_f1_mean']:.1f} ± {100 * s['macro_f1_std']:.1f} % (mean ± sample standard deviation "
            f"over {len(run.folds)} fold(s)); pooled accuracy {100 * s['pooled_accuracy']:.1f} % on "
            f"{len(run.pooled)} test clips.",
            f"{s.get('n_clips', len(run.pooled))} clips, {len(run.class_names)} classes, "
            f"{len(run.skipped)} file(s) skipped as unreadable"
            + (f", of them {sum(s['skipped_test_clips'].values())} test clip(s) (per fold in the table)."
               if s.get("skipped_test_clips") else ".")]
    text += [f"Warning: {w}." for w in s.get("warnings", [])]
    tables = [("Per fold", table_from_frame(folds, SCORE_FORMATS), True)]
    if len(run.skipped):
        tables.append(("Skipped files", table_from_frame(run.skipped), False))
    data = {k: s.get(k) for k in ("accuracy_mean", "accuracy_std", "macro_f1_mean", "macro_f1_std",
                                  "pooled_accuracy", "n_clips", "skipped")}
    return Section("summary", "Summary", text, [key], tables,
                   data={**data, "folds": folds.to_dict(orient="records"), "skipped_files": run.skipped.to_dict(
                       orient="records")})


def provenance_section(run: Run) -> Section:
    """Where the numbers came from: ``env.json``'s commit, versions, machine and each session's command."""
    env = run.env
    section = Section("provenance", "Provenance")
    if not env:
        section.text.append("This run has no env.json (written by esclab since its provenance record was added).")
        return section
    dirty = {True: " with uncommitted changes", False: "", None: ""}[env.get("dirty")]
    machine, versions = env.get("machine", {}), env.get("versions", {})
    section.text += [
        f"Code: commit {env.get('commit') or 'unknown (not a git checkout)'}{dirty}.",
        f"Machine: {machine.get('cpu')} ({machine.get('cpu_count')} cores, torch threads "
        f"{machine.get('torch_threads')}), {machine.get('platform')}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v) + "."]
    sessions = pd.DataFrame([{"start": x.get("start"), "end": x.get("end") or "(interrupted)",
                              "commit": (x.get("commit") or "")[:12], "folds finished": x.get("folds_finished"),
                              "command": " ".join(x.get("argv", []))} for x in env.get("sessions", [])])
    section.text += [f"Warning: {w}" for x in env.get("sessions", []) for w in x.get("warnings", [])]
    section.tables.append(("Sessions", table_from_frame(sessions), True))
    section.data = env
    return section


def training_section(run: Run, figures: Figures) -> Section:
    """Loss and accuracy per epoch from each fold's Lightning CSV log."""
    logs = {f: log for f in run.folds if (log := run.training_log(f)) is not None}
    section = Section("training", "Training curves")
    if not logs:
        section.text.append("No training logs (fold_K/logs/metrics.csv) in this run.")
        return section
    panels, numbers = [], {}
    for metric, label in (("loss", "loss"), ("acc", "accuracy")):
        lines = []
        for i, (fold, log) in enumerate(logs.items()):
            for stage, style in (("train", "-"), ("val", "--")):
                column = f"{stage}_{metric}"
                if column in log and log[column].notna().any():
                    points = log[["epoch", column]].dropna()
                    epochs = points["epoch"].astype(int).tolist()
                    lines.append(Line(f"fold {fold} {stage}", epochs, points[column].tolist(), style, color=f"C{i}"))
                    numbers.setdefault(f"fold_{fold}", {})[column] = {"epoch": epochs,
                                                                      "value": points[column].tolist()}
        panels.append(LinePanel(f"{label} per epoch (solid: train, dashed: validation)", "epoch", label, lines,
                                integer_x=True))
    section.figures.append(figures.add("training_curves", line_panels_figure(panels), numbers))
    return section


def confusion_section(run: Run, figures: Figures, top_pairs: int) -> Section:
    """Pooled confusion matrix (counts and row-normalised) and the most confused pairs."""
    names = run.class_names
    matrix = run.confusion
    numbers = {"class_names": names, "matrix": matrix.tolist()}
    dpi = 150 if len(names) > 20 else 100  # sharp when the reader zooms into 50 class names
    keys = [figures.add("confusion_counts", confusion_figure(matrix, names, title="Confusion matrix (counts)"),
                        numbers, dpi),
            figures.add("confusion_normalized", confusion_figure(matrix, names, normalize=True,
                                                                 title="Confusion matrix"),
                        {**numbers, "row_normalized": (matrix / np.maximum(matrix.sum(1, keepdims=True), 1)).tolist()},
                        dpi)]
    pairs = M.top_confusions(matrix, names, k=top_pairs)
    support = dict(zip(names, matrix.sum(axis=1), strict=True))
    pairs["share"] = [c / max(support[t], 1) for t, c in zip(pairs["true"], pairs["count"], strict=True)]
    text = [f"Pooled over folds {run.folds}: rows are the true class, columns the prediction; "
            f"{int(matrix.sum())} test clips. 'share' is the fraction of the true class's clips that went to the "
            f"predicted class."]
    return Section("confusion", "Confusion", text, keys, [("Top confused pairs", table_from_frame(pairs, SCORE_FORMATS),
                                                            True)],
                   data={"top_pairs": pairs.to_dict(orient="records")})


def per_class_section(run: Run) -> Section:
    """scikit-learn precision, recall, F1 and support per class, pooled and per fold."""
    names = run.class_names
    reports = {"pooled": M.per_class_report(run.pooled["target"].to_numpy(), run.pooled["pred"].to_numpy(), names)}
    for fold in run.folds:
        p = run.predictions[fold]
        reports[f"fold {fold}"] = M.per_class_report(p["target"].to_numpy(), p["pred"].to_numpy(), names)
    text = ["scikit-learn's definitions (zero where a class is never predicted). Click a column header to sort."]
    tables = [(f"Per class, {scope}", table_from_frame(frame, SCORE_FORMATS), scope == "pooled")
              for scope, frame in reports.items()]
    return Section("per-class", "Per-class report", text, tables=tables,
                   data={scope: frame.to_dict(orient="records") for scope, frame in reports.items()})


def bias_section(run: Run, figures: Figures) -> Section:
    """Predicted against true count per class, with the flags of :func:`metrics.prediction_bias`."""
    bias = M.prediction_bias(run.pooled["target"].to_numpy(), run.pooled["pred"].to_numpy(), run.class_names)
    key = figures.add("prediction_bias", count_bias_figure(run.class_names, bias["true"].tolist(),
                                                           bias["predicted"].tolist(), bias["flag"].tolist()),
                      bias.to_dict(orient="records"))
    flagged = bias[bias["flag"] != ""]
    text = ["A class is flagged over- (under-) predicted when its predicted count is more than 50 % above (below) "
            "its true count and a two-sided exact binomial test (predicted count ~ Binomial(N, true share)) "
            "gives p < 0.05.",
            f"{(flagged['flag'] == 'over').sum()} class(es) over-predicted, {(flagged['flag'] == 'under').sum()} "
            f"under-predicted."]
    tables = [("Flagged classes", table_from_frame(flagged, SCORE_FORMATS), True)] if len(flagged) else []
    tables.append(("All classes", table_from_frame(bias, SCORE_FORMATS), False))
    return Section("bias", "Prediction bias", text, [key], tables, data={"classes": bias.to_dict(orient="records")})


def run_calibration(run: Run) -> dict[str, Any] | None:
    """The run's pooled calibration as training wrote it (``summary.json``, :func:`esclab.calibration.pooled_calibration`);
    ``None``: no fold calibrated."""
    return run.summary.get("calibration")


def calibration_section(run: Run, figures: Figures) -> Section:
    """ECE before and after each fold's temperature, the reliability diagram and the rejection rule."""
    c = run_calibration(run)
    if c is None:
        return Section("calibration", "Calibration and rejection", [
            "Not calibrated: no fold fitted a temperature (train.calibrate off, or no held-out split: a fit "
            "without data.val_fraction). Probabilities are the raw softmax, and nothing is answered 'unknown'."])
    key = figures.add("reliability", reliability_figure(c["reliability_before"], c["reliability"],
                                                        "Reliability on the pooled test folds"),
                      {"before": c["reliability_before"], "after": c["reliability"]})
    table = pd.DataFrame([{"fold": int(f), "temperature": c["temperatures"][f], "reject_below": c["reject_below"][f],
                           "source": run.fold_metrics(int(f))["calibration"]["source"]} for f in c["temperatures"]])
    share = f"{100 * c['test_rejected']:.1f} %"
    text = [f"Each fold's temperature was fitted on predictions for clips it did not train on and that are not its "
            f"test fold ({'; '.join(c['sources'])}), then folded into its head, so predict, serve and export give "
            f"these calibrated probabilities. Expected calibration error (15 bins, pooled test predictions): "
            f"{c['ece_before']:.3f} before, {c['ece_after']:.3f} after (mean temperature {c['temperature']:.2f}).",
            f"Rejection rule: a clip whose best calibrated probability is below the fold's threshold is answered "
            f"'unknown'; each threshold was chosen to turn away {100 * c['false_rejection']:.0f} % of those held-out "
            f"clips. On the test folds (all of known classes) it turned away {share}; accuracy on the rest "
            + ("-" if c["accuracy_accepted"] is None else f"{100 * c['accuracy_accepted']:.1f} %") + "."]
    return Section("calibration", "Calibration and rejection", text, [key],
                   [("Per fold", table_from_frame(table, {"temperature": ".3f", "reject_below": ".3f"}), True)],
                   data={k: v for k, v in c.items() if not k.startswith("reliability")})


def gallery_section(run: Run, limit: int) -> Section:
    """The worst misclassified clips, each with its spectrogram, heatmap and audio."""
    all_wrong = worst_mistakes(run.pooled, None)
    items, unreadable = build_gallery(all_wrong.head(limit), run.bundle)
    text = [f"{len(all_wrong)} of {len(run.pooled)} test clips misclassified; the {len(items)} with the highest "
            f"(wrong) confidence are shown, each scored by its own fold's model. Left: log-mel spectrogram; right: "
            f"where the model looked for the class it predicted."]
    if unreadable:
        text.append(f"{unreadable} clip(s) left out: their audio could not be read (see the log).")
    return Section("gallery", "Misclassified gallery", text, gallery=items,
                   data={"n_misclassified": len(all_wrong), "items": [i.numbers() for i in items]})


def heatmap_classes(run: Run) -> list[str]:
    """Every class: those of the most confused pairs first (both sides, most confused first), then the rest."""
    names = run.class_names
    pairs = M.top_confusions(run.confusion, names, k=len(names))
    return list(dict.fromkeys([*pairs[["true", "predicted"]].to_numpy().ravel(), *names]))


def heatmap_section(run: Run, figures: Figures, limit: int) -> Section:
    """For the classes most involved in confusions, the most confident correct clip and its heatmap."""
    section = Section("heatmaps", "Heatmaps")
    right = run.pooled[run.pooled["pred"] == run.pooled["target"]].sort_values("confidence", ascending=False)
    picks = right.drop_duplicates("label").set_index("label")
    picks = picks.loc[[c for c in heatmap_classes(run) if c in picks.index][:limit]].reset_index()
    if picks.empty:
        section.text.append("No correctly classified clip to explain.")
        return section
    panels, numbers = [], []
    for fold, rows in picks.groupby("fold", sort=False):
        bundle = run.bundle(int(fold))
        waves, ok = load_clips(rows["path"].tolist(), bundle.audio)
        for (_, row), shown in zip(rows[ok].iterrows(), explain(bundle, waves, rows[ok]["target"].to_numpy()),
                                   strict=True):
            panels.append(SpectrogramPanel(shown.spec_db, shown.heat,
                                           f"{row['label']} ({row['confidence']:.2f}): {shown.method}"))
            numbers.append({"class": row["label"], "clip_id": row["clip_id"], "fold": int(fold),
                            "confidence": float(row["confidence"]), "method": shown.method})
    methods = sorted({n["method"] for n in numbers})
    if not panels or methods == ["none"]:
        section.text.append("This model exposes neither attention maps nor a Grad-CAM layer." if panels
                            else "The audio of the chosen clips could not be read.")
        return section
    seconds_per_frame = bundle.seconds_per_frame
    section.text.append(f"Method: {', '.join(methods)} (attention maps where the model has them, else Grad-CAM on "
                        f"its last convolutional layer), overlaid on the log-mel; red is where the model looked. One "
                        f"confidently correct clip per class, classes of the most confused pairs first.")
    section.figures.append(figures.add("heatmaps", spectrogram_figure(panels, seconds_per_frame, ncols=3), numbers,
                                                   dpi=80, photo=True))
    section.data = {"clips": numbers}
    return section


def robustness_section(run: Run, figures: Figures, clips_per_fold: int | None, seed: int) -> Section:
    """Accuracy against white-noise SNR and speed factor, per fold and pooled."""
    counts, used = {}, []
    for fold in run.folds:
        bundle = run.bundle(fold)
        preds = run.predictions[fold]
        rng = np.random.default_rng([seed, fold])
        if clips_per_fold is not None and clips_per_fold < len(preds):
            preds = preds.iloc[np.sort(rng.choice(len(preds), clips_per_fold, replace=False))]
        waves, ok = load_clips(preds["path"].tolist(), bundle.audio)
        used.append(preds[ok])
        counts[fold] = robustness_counts(bundle, waves, preds["target"].to_numpy()[ok], SNRS_DB, RATES,
                                         seed=int(rng.integers(2**31)))
    n = sum(c["n"] for c in counts.values())
    pooled = {kind: (np.sum([c[kind] for c in counts.values()], axis=0) / max(n, 1)).tolist()
              for kind in ("noise", "speed")}
    per_fold = {f"fold_{f}": {"n": c["n"], **{k: (np.asarray(c[k]) / max(c["n"], 1)).tolist()
                                              for k in ("noise", "speed")}} for f, c in counts.items()}
    labels = [snr_label(s) for s in SNRS_DB]
    numbers = {"snr_db": list(SNRS_DB), "snr_labels": labels, "rates": list(RATES), "n_clips": n,
               "pooled": pooled, "folds": per_fold}
    panels = [LinePanel("White noise", "signal-to-noise ratio", "accuracy", [], (list(range(len(labels))), labels),
                        (0, 1.02)),
              LinePanel("Speed (time stretch, pitch kept)", "speed factor", "accuracy", [], None, (0, 1.02))]
    curves = [*[(k.replace("_", " "), v, ":.", f"C{i}") for i, (k, v) in enumerate(per_fold.items())],
              ("all folds", pooled, "-o", "black")]
    for name, acc, style, color in curves:
        panels[0].lines.append(Line(name, list(range(len(labels))), acc["noise"], style, color))
        panels[1].lines.append(Line(name, list(RATES), acc["speed"], style, color))
    key = figures.add("robustness", line_panels_figure(panels), numbers)
    table = pd.DataFrame({"condition": [*labels, *[f"speed x{r:g}" for r in RATES]],
                          "all folds": pooled["noise"] + pooled["speed"],
                          **{k.replace("_", " "): v["noise"] + v["speed"] for k, v in per_fold.items()}})
    used_rows = pd.concat(used)
    recorded = float((used_rows["pred"] == used_rows["target"]).mean()) if len(used_rows) else float("nan")
    text = [f"{n} test clips ({'all' if clips_per_fold is None else f'up to {clips_per_fold} per fold, seeded'}), each "
            f"fold scored by its own model from the decoded audio; noise from AddWhiteNoise and speed from "
            f"TimeStretch, frozen at each value. Clean accuracy here {100 * pooled['noise'][0]:.1f} %; the training "
            f"run recorded {100 * recorded:.1f} % on the same clips from its feature cache.",
            "Speed x1 still runs the clips through the time stretcher, so its gap to clean accuracy is the "
            "stretcher's own artefact."]
    return Section("robustness", "Robustness", text, [key], [("Accuracy per condition, all folds",
                                                               table_from_frame(table, dict.fromkeys(table.columns[1:], ".3f")), True)],
                   data=numbers)
