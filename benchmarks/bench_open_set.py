"""Open-set benchmark: how well the rejection rule says "none of these" for classes a model never saw.

A seeded split of ESC-50's 50 classes into known and unknown (40 / 10 by default). A cross-validation
run over the official folds trains on the known classes only (the run's own recipe, calibration and
threshold included; nothing about the unknown classes is seen while training or choosing). Then, per
fold, the fold's bundle scores its test fold: the known clips (already in ``predictions.csv``, calibrated)
and the unknown classes' clips of that fold. Reported per fold and pooled:

- ``auroc``: area under the ROC curve of the best calibrated probability separating known (positive)
  from unknown test clips (1.0: every unknown clip scores below every known one; 0.5: chance);
- ``unknown_rejected``: share of unknown clips the fold's threshold answers ``unknown``;
- ``known_rejected``: share of known test clips it turns away (the threshold was chosen for 5 % on
  held-out training data);
- ``known_accuracy``: the run's accuracy over the 40 known classes.

Usage (one command; about 3 minutes for the mn04 probe on 2 cores)::

    python benchmarks/bench_open_set.py --data ../shared/esc50 --out runs/open_set --seed 0

``--config`` names the experiment (default ``mn04_probe``); ``--set KEY=VALUE`` overrides it like ``esclab cv``.
The result goes to ``OUT/open_set.json`` and is printed.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from esclab.calibration import UNKNOWN
from esclab.config import find_experiment, load_config
from esclab.data import load_esc50
from esclab.fsutil import atomic_write
from esclab.inference import Predictor
from esclab.train.cv import run_cv


def split_classes(names: list[str], unknown: int, seed: int) -> tuple[list[str], list[str]]:
    """``(known, unknown)`` class names: ``unknown`` of them drawn with ``seed``, both in the original order."""
    drawn = set(np.random.default_rng(seed).choice(len(names), size=unknown, replace=False).tolist())
    return [n for i, n in enumerate(names) if i not in drawn], [n for i, n in enumerate(names) if i in drawn]


def write_known_csv(table: pd.DataFrame, known: list[str], path: Path) -> Path:
    """A folder-dataset CSV of the known classes' clips (absolute paths, official folds, source recordings)."""
    rows = table[table["label"].isin(known)][["path", "label", "fold", "group"]]
    atomic_write(path, rows.to_csv(index=False))
    return path


def fold_scores(run: Path, fold: int, unknown_clips: pd.DataFrame) -> dict[str, object]:
    """The fold's known test clips (from its predictions) and unknown clips (scored now) against its threshold."""
    predictor = Predictor.from_checkpoint(run / f"fold_{fold}" / "model.ckpt")
    known = pd.read_csv(run / f"fold_{fold}" / "predictions.csv")
    known_best = known[[f"p_{i}" for i in range(len(predictor.class_names))]].to_numpy().max(axis=1)
    waves = [predictor.load(p) for p in unknown_clips["path"]]
    unknown_best = predictor.pooled_scores(waves).max(axis=1)
    threshold = predictor.reject_below or 0.0
    labels = np.r_[np.ones(len(known_best)), np.zeros(len(unknown_best))]
    return {"fold": fold, "threshold": threshold, "n_known": len(known_best), "n_unknown": len(unknown_best),
            "auroc": float(roc_auc_score(labels, np.r_[known_best, unknown_best])),
            "unknown_rejected": float((unknown_best < threshold).mean()),
            "known_rejected": float((known_best < threshold).mean()),
            "known_accuracy": float((known["pred"] == known["target"]).mean()),
            "_scores": (known_best, unknown_best)}


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="ESC-50 folder (meta/esc50.csv and audio/)")
    parser.add_argument("--out", required=True, help="folder for the known-class run and open_set.json")
    parser.add_argument("--config", default="mn04_probe", help="experiment (default mn04_probe)")
    parser.add_argument("--unknown", type=int, default=10, help="classes held out as unknown (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the class split (default 0)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    out = Path(args.out)
    table = load_esc50(args.data, download=False).clips
    names = table.drop_duplicates("label").sort_values("target")["label"].tolist()
    known, unknown = split_classes(names, args.unknown, args.seed)
    csv = write_known_csv(table, known, out / "known_classes.csv")
    cfg = load_config(find_experiment(args.config), ["data.dataset=folder", f"data.csv={csv.resolve()}",
                                                      f"data.root={Path(args.data).resolve()}",
                                                      f"name=open_set_{args.config}_seed{args.seed}", *args.overrides])
    start = time.perf_counter()
    run_cv(cfg, out / "run", progress=False)
    folds = [fold_scores(out / "run", k, table[table["label"].isin(unknown) & (table["fold"] == k)])
             for k in cfg.data.folds]
    known_all = np.concatenate([f["_scores"][0] for f in folds])
    unknown_all = np.concatenate([f["_scores"][1] for f in folds])
    rejected_unknown = sum(f["unknown_rejected"] * f["n_unknown"] for f in folds) / len(unknown_all)
    rejected_known = sum(f["known_rejected"] * f["n_known"] for f in folds) / len(known_all)
    result = {
        "experiment": args.config, "seed": args.seed, "known": known, "unknown": unknown,
        "answer": UNKNOWN, "folds": [{k: v for k, v in f.items() if k != "_scores"} for f in folds],
        "auroc_mean": float(np.mean([f["auroc"] for f in folds])),
        "auroc_std": float(np.std([f["auroc"] for f in folds], ddof=1)) if len(folds) > 1 else 0.0,
        "auroc_pooled": float(roc_auc_score(np.r_[np.ones(len(known_all)), np.zeros(len(unknown_all))],
                                            np.r_[known_all, unknown_all])),
        "unknown_rejected": float(rejected_unknown), "known_rejected": float(rejected_known),
        "known_accuracy_mean": float(np.mean([f["known_accuracy"] for f in folds])),
        "seconds": round(time.perf_counter() - start, 1),
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "cpu_capability": torch.backends.cpu.get_cpu_capability()},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    atomic_write(out / "open_set.json", json.dumps(result, indent=2))
    print(f"open set ({len(known)} known / {len(unknown)} unknown classes, seed {args.seed}, {args.config}): "
          f"AUROC {result['auroc_mean']:.3f} ± {result['auroc_std']:.3f} over folds (pooled {result['auroc_pooled']:.3f}); "
          f"unknown clips rejected {100 * rejected_unknown:.1f} %, known test clips rejected "
          f"{100 * rejected_known:.1f} %; known-class accuracy {100 * result['known_accuracy_mean']:.1f} %; "
          f"{result['seconds']:.0f} s")
    return result


if __name__ == "__main__":
    main()
