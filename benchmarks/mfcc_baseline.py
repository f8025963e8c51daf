"""The classic baseline: MFCC statistics + logistic regression on ESC-50's official folds.

Each clip: 40 MFCCs (librosa, 22,050 Hz, n_fft 2048, hop 512) and their deltas, summarised by
mean and standard deviation over time (160 numbers). Each fold: a standardised multinomial
logistic regression (C = 1, fixed in advance) fitted on the other four folds, tested on it.
Nothing is chosen on a test fold. ``--out-dir`` writes a run folder laid out as ``esclab cv`` writes one
(``summary.json`` with ``accuracy_mean``, ``accuracy_std`` and ``folds``; ``config.yaml`` naming the method;
``env.json`` with the session's commit, machine, data and times; ``fold_K/predictions.csv`` and
``metrics.json``), so every figure can be recomputed and ``scripts/publish_run.py --numbers-only`` publishes it.

Usage::

    python benchmarks/mfcc_baseline.py --data ../shared/esc50 --out-dir runs/mfcc_baseline
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from esclab.audio import load_audio
from esclab.data import load_esc50
from esclab.fsutil import atomic_write
from esclab.provenance import RunProvenance, dataset_facts
from esclab.runs import RunDir, write_json, write_predictions

SAMPLE_RATE = 22050


def mfcc_statistics(path: str) -> np.ndarray:
    """Mean and std over time of 40 MFCCs and their deltas: ``(160,)``."""
    wave = load_audio(path, SAMPLE_RATE, duration=5.0)
    mfcc = librosa.feature.mfcc(y=wave, sr=SAMPLE_RATE, n_mfcc=40, n_fft=2048, hop_length=512)
    both = np.concatenate([mfcc, librosa.feature.delta(mfcc)])
    return np.concatenate([both.mean(axis=1), both.std(axis=1)]).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="ESC-50 folder")
    parser.add_argument("--out-dir", help="run folder to write (summary.json, env.json, fold_K/predictions.csv)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    table = load_esc50(args.data, download=False)
    clips = table.clips
    provenance = None
    if args.out_dir:
        run = RunDir(Path(args.out_dir))
        run.path.mkdir(parents=True, exist_ok=True)
        provenance = RunProvenance(run.env, torch.get_num_threads())
        provenance.start()
        provenance.record_data(dataset_facts(clips["path"].tolist(), table.metadata))
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        features = np.stack(list(pool.map(mfcc_statistics, clips["path"], chunksize=16)))
    feature_time = time.perf_counter() - start
    folds, targets = clips["fold"].to_numpy(), clips["target"].to_numpy()
    rows, accuracies = [], []
    for fold in sorted(set(folds)):
        train, test = folds != fold, folds == fold
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        model.fit(features[train], targets[train])
        probs = model.predict_proba(features[test])
        accuracies.append(float((probs.argmax(axis=1) == targets[test]).mean()))
        rows.append((int(fold), clips[test].reset_index(drop=True), probs))
        print(f"fold {fold}: accuracy {100 * accuracies[-1]:.1f} %")
    print(f"MFCC + logistic regression: {100 * np.mean(accuracies):.1f} ± {100 * np.std(accuracies, ddof=1):.1f} % "
          f"over {len(accuracies)} folds ({len(clips)} clips; features {feature_time:.0f} s, "
          f"total {time.perf_counter() - start:.0f} s)")
    if provenance is not None:
        write_run(run, rows, table.class_names, accuracies, time.perf_counter() - start)
        for fold, _, _ in rows:
            provenance.fold_finished(fold, "32-true")
        provenance.end()


def write_run(run: RunDir, rows: list[tuple[int, pd.DataFrame, np.ndarray]], class_names: list[str],
              accuracies: list[float], seconds: float) -> None:
    """The run folder: per fold its predictions and metrics, then the summary and the method as config.yaml."""
    folds = {}
    for (fold, test, probs), accuracy in zip(rows, accuracies, strict=True):
        run.fold(fold).path.mkdir(parents=True, exist_ok=True)
        write_predictions(run.fold(fold).predictions, test, probs, class_names)
        folds[str(fold)] = {"fold": fold, "accuracy": accuracy, "n_test": len(test)}
        write_json(run.fold(fold).metrics, folds[str(fold)])
    write_json(run.summary, {"name": "mfcc_baseline", "model": "mfcc_logistic_regression", "folds": folds,
                             "accuracy_mean": float(np.mean(accuracies)),
                             "accuracy_std": float(np.std(accuracies, ddof=1)), "class_names": class_names,
                             "wall_time_s_this_session": round(seconds, 1)})
    atomic_write(run.config, "name: mfcc_baseline\nmethod: >-\n  40 MFCCs (librosa, 22050 Hz, n_fft 2048, hop 512) and "
                 "deltas, mean and std over time (160 values);\n  StandardScaler + LogisticRegression(C=1, "
                 "max_iter=2000) per fold on the other four folds\n")


if __name__ == "__main__":
    main()
