"""Does test-time augmentation pay? Re-score a finished run's folds with time-shift TTA.

Each fold's bundle (``fold_K/model.ckpt``) classifies its own test fold from the cached
log-mels, once per view count; ``views=1`` reproduces the run's own accuracy (a check).

    python benchmarks/bench_tta.py runs/best_cpu --views 1,2,4,8

Prints one row per fold and the mean, as a Markdown table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from esclab.bundle import load_bundle
from esclab.config import load_config_file
from esclab.data import load_dataset
from esclab.features.cache import FeatureCache
from esclab.tta import tta_probabilities


def fold_accuracy(bundle_path: Path, specs: torch.Tensor, target: np.ndarray, n_views: int,
                  batch_size: int = 64) -> float:
    bundle = load_bundle(bundle_path)
    standardize = bundle.frontend[1]

    def logits_fn(spec: torch.Tensor) -> torch.Tensor:
        return bundle.model(standardize(spec))

    preds = [tta_probabilities(logits_fn, specs[i:i + batch_size], n_views).argmax(dim=1)
             for i in range(0, len(specs), batch_size)]
    return float((torch.cat(preds).numpy() == target).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished (or partly finished) esclab cv run folder")
    parser.add_argument("--views", default="1,2,4,8", help="comma-separated view counts")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    views = [int(v) for v in args.views.split(",")]
    cfg = load_config_file(args.run / "config.yaml")
    table = load_dataset(cfg.data, seed=cfg.train.seed)
    specs, bad = FeatureCache(cfg.audio, cfg.features).load(table.clips["path"].tolist(),
                                                            table.clips["clip_id"].tolist(), progress=False)
    clips, specs = table.without(bad).clips, torch.as_tensor(specs, dtype=torch.float32)
    folds = sorted(int(d.name.split("_")[1]) for d in args.run.glob("fold_*") if (d / "model.ckpt").is_file())
    print("| fold | " + " | ".join(f"{v} view{'s' * (v > 1)}" for v in views) + " | s (all views) |")
    print("|---|" + "---|" * (len(views) + 1))
    table_rows = []
    for fold in folds:
        rows = np.flatnonzero(clips["fold"].to_numpy() == fold)
        start = time.perf_counter()
        accs = [fold_accuracy(args.run / f"fold_{fold}" / "model.ckpt", specs[rows].unsqueeze(1),
                              clips["target"].to_numpy()[rows], v) for v in views]
        table_rows.append(accs)
        print(f"| {fold} | " + " | ".join(f"{100 * a:.1f} %" for a in accs) + f" | {time.perf_counter() - start:.0f} |")
    if table_rows:
        mean = np.mean(table_rows, axis=0)
        print("| mean | " + " | ".join(f"**{100 * a:.1f} %**" for a in mean) + " | |")


if __name__ == "__main__":
    main()
