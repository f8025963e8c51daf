"""Accuracy of the uniform weight average ("soup") of several runs' fold networks, beside each run alone.

The runs must share folds, data and architecture (seeds of one recipe). For each fold, every run's bundle
(``fold_K/model.ckpt``) and the average of their weights classify the fold's test clips from the cached
log-mels; BatchNorm running statistics are averaged too (counters come from the last run), and the script says whether they were identical (they are
when the recipe keeps the pretrained statistics, ``train.freeze_bn_stats``). Prints a row per fold and the means.

    python benchmarks/finetune_selection/soup_eval.py runs/inner/ls10 runs/inner/ls10_s1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from esclab.bundle import load_bundle
from esclab.config import load_config_file
from esclab.data import load_dataset
from esclab.features.cache import FeatureCache
from esclab.train.averaging import interpolate_weights


def average_state(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The equal-weight average of the states, as a running mean of :func:`interpolate_weights` steps."""
    average = states[0]
    for count, state in enumerate(states[1:], start=2):
        average = interpolate_weights(average, state, 1.0 / count)
    return average


def accuracy(model: torch.nn.Module, standardize: torch.nn.Module, specs: torch.Tensor, target: np.ndarray) -> float:
    with torch.no_grad():
        logits = torch.cat([model(standardize(specs[i:i + 64])) for i in range(0, len(specs), 64)])
    return float((logits.argmax(dim=1).numpy() == target).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="finished esclab cv run folders, two or more")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config_file(args.runs[0] / "config.yaml")
    table = load_dataset(cfg.data, seed=cfg.train.seed)
    specs, bad = FeatureCache(cfg.audio, cfg.features).load(table.clips["path"].tolist(),
                                                            table.clips["clip_id"].tolist(), progress=False)
    clips, specs = table.without(bad).clips, torch.as_tensor(specs, dtype=torch.float32).unsqueeze(1)
    folds = sorted(int(d.name.split("_")[1]) for d in args.runs[0].glob("fold_*") if (d / "model.ckpt").is_file())
    print("| fold | " + " | ".join(run.name for run in args.runs) + " | weight average | BatchNorm statistics equal |")
    print("|---|" + "---|" * (len(args.runs) + 2))
    rows = []
    for fold in folds:
        test = np.flatnonzero(clips["fold"].to_numpy() == fold)
        target = clips["target"].to_numpy()[test]
        bundles = [load_bundle(run / f"fold_{fold}" / "model.ckpt") for run in args.runs]
        standardize = bundles[0].frontend[1]
        accs = [accuracy(b.model, standardize, specs[test], target) for b in bundles]
        states = [b.model.state_dict() for b in bundles]
        same_bn = all(torch.equal(states[0][k], s[k]) for s in states for k in states[0] if "running_" in k)
        bundles[0].model.load_state_dict(average_state(states))
        accs.append(accuracy(bundles[0].model, standardize, specs[test], target))
        rows.append(accs)
        print(f"| {fold} | " + " | ".join(f"{100 * a:.2f}" for a in accs) + f" | {same_bn} |")
    print("| mean | " + " | ".join(f"{100 * a:.4f}" for a in np.mean(rows, axis=0)) + " | |")


if __name__ == "__main__":
    main()
