"""Run several variants of an experiment under the same budget and tabulate accuracy and epoch time.

Each variant is ``NAME=override;override;...`` (``augment=strong`` swaps a group file) on top of ``--config`` and the shared ``--set``
overrides. Runs go to ``--out/NAME`` and resume like any run (a finished variant is read back,
not retrained), so a sweep cut off midway continues where it stopped.

Examples::

    # augmentation ablation (issue 4), folds 1-2, same budget for every variant: none, each group of the
    # strong preset alone (``key={}`` empties a section), all of it
    python benchmarks/sweep.py --config configs/experiment/paper_cnn.yaml --data ../shared/esc50 \\
        --folds 1,2 --out runs/ablation --set train.num_threads=2 \\
        --variant none="augment=none" --variant all="augment=strong" \\
        --variant spectrogram="augment=strong;augment.waveform={};augment.bank_size=0;augment.mixup_alpha=0" \\
        --variant mixup="augment=none;augment.mixup_alpha=0.2" \\
        --variant waveform="augment=strong;augment.spectrogram={};augment.mixup_alpha=0"

    # model zoo on fold 1 (issue 5): the base experiment with one model each
    python benchmarks/sweep.py --config configs/experiment/base.yaml --data ../shared/esc50 --folds 1 \\
        --out runs/zoo --variant paper_cnn=@configs/experiment/paper_cnn.yaml \\
        --variant attention_cnn="model=attention_cnn" --variant conformer="model=conformer;features=logmel_128_std"

A variant whose first item is ``@PATH`` uses that experiment file instead of ``--config``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from esclab.config import load_config
from esclab.train.cv import run_cv


def parse_variant(text: str, default_config: str | None) -> tuple[str, str, list[str]]:
    """``NAME=@config;key=value;...`` -> (name, config path, overrides)."""
    name, _, rest = text.partition("=")
    items = [item for item in rest.split(";") if item]
    config = default_config
    if items and items[0].startswith("@"):
        config = items.pop(0)[1:]
    if not name or config is None:
        raise SystemExit(f"bad --variant {text!r}: need NAME=[@CONFIG;]key=value;...")
    return name, config, items


def markdown_table(rows: list[dict]) -> str:
    lines = ["| variant | folds | accuracy per fold (%) | mean ± std (%) | s / epoch | epochs |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        per_fold = ", ".join(f"{100 * a:.1f}" for a in r["accuracy_per_fold"])
        lines.append(f"| {r['variant']} | {r['folds']} | {per_fold} | {100 * r['accuracy_mean']:.1f} ± "
                     f"{100 * r['accuracy_std']:.1f} | {r['epoch_time_s']:.1f} | {r['epochs']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="base experiment (variants may name their own with @PATH)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--folds", default="1")
    parser.add_argument("--out", required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--variant", action="append", required=True)
    parser.add_argument("--report", action="store_true", help="end each variant with its HTML report (slower)")
    args = parser.parse_args()
    out = Path(args.out)
    rows = []
    for text in args.variant:
        name, config, items = parse_variant(text, args.config)
        overrides = [f"data.root={args.data}", f"data.folds=[{args.folds}]", "train.progress_bar=false",
                     *args.overrides, *items]
        result = run_cv(load_config(config, overrides), out / name, progress=False)
        folds = result.summary["folds"]
        rows.append({
            "variant": name, "config": config, "overrides": items, "folds": args.folds,
            "accuracy_per_fold": [folds[k]["accuracy"] for k in sorted(folds)],
            "accuracy_mean": result.summary["accuracy_mean"], "accuracy_std": result.summary["accuracy_std"],
            "epoch_time_s": result.summary["epoch_time_s_mean"] or 0.0,
            "epochs": "/".join(str(folds[k]["epochs"]) for k in sorted(folds)),
        })
        (out / "sweep.json").write_text(json.dumps(rows, indent=2))
        print(markdown_table(rows), flush=True)


if __name__ == "__main__":
    main()
