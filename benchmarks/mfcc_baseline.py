"""The classic baseline: MFCC statistics + logistic regression on ESC-50's official folds.

Each clip: 40 MFCCs (librosa, 22,050 Hz, n_fft 2048, hop 512) and their deltas, summarised by
mean and standard deviation over time (160 numbers). Each fold: a standardised multinomial
logistic regression (C = 1, fixed in advance) fitted on the other four folds, tested on it.
Nothing is chosen on a test fold. Per-clip predictions go to ``--out`` (gzip'd CSV).

Usage::

    python benchmarks/mfcc_baseline.py --data ../shared/esc50 --out runs/mfcc_baseline.csv.gz
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

import librosa
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from esclab.audio import load_audio
from esclab.data import load_esc50

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
    parser.add_argument("--out", help="per-clip predictions, CSV (.csv.gz to compress)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    table = load_esc50(args.data, download=False)
    clips = table.clips
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
        pred = model.predict(features[test])
        accuracies.append(float((pred == targets[test]).mean()))
        rows.append(clips[test][["clip_id", "fold", "target", "label"]].assign(pred=pred))
        print(f"fold {fold}: accuracy {100 * accuracies[-1]:.1f} %")
    print(f"MFCC + logistic regression: {100 * np.mean(accuracies):.1f} ± {100 * np.std(accuracies, ddof=1):.1f} % "
          f"over {len(accuracies)} folds ({len(clips)} clips; features {feature_time:.0f} s, "
          f"total {time.perf_counter() - start:.0f} s)")
    if args.out:
        pd.concat(rows).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
