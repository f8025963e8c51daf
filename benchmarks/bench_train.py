"""Paper-CNN training time per clip: `esclab cv` (one fold, 2 epochs) against the plain PyTorch loop (issue 18).

esclab's side is ``epoch_time_s / n_train`` from ``fold_1/metrics.json`` (the wall time of a whole epoch,
validation included, per training clip); the plain side is one epoch of ``plain_pipeline.py train`` over
fold 1's 1600 training clips (its features are made first with ``plain_pipeline.py features``).

Usage: python benchmarks/bench_train.py --data ../shared/esc50
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_features import PLAIN_ENV, load  # benchmarks/ is on sys.path when run as a script

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    return subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--config", default="configs/experiment/paper_cnn.yaml")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--cache-dir", help="esclab's feature cache (default: a fresh one)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench18-train-"))
    try:
        measure(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(args: argparse.Namespace, tmp: Path) -> None:
    cache = args.cache_dir or str(tmp / "cache")
    overrides = [f"train.max_epochs={args.epochs}", f"features.cache_dir={cache}", *args.overrides]
    print(f"esclab cv ({load()})", flush=True)
    run([sys.executable, "-m", "esclab.cli", "cv", "--config", args.config, "--data", args.data, "--folds", "1",
         *[a for o in overrides for a in ("--set", o)], "--no-report", "--out", str(tmp / "run")])
    metrics = json.loads((tmp / "run" / "fold_1" / "metrics.json").read_text())
    esclab = metrics["epoch_time_s"] / metrics["n_train"]
    print(f"esclab: {metrics['epoch_time_s']:.2f} s/epoch for {metrics['n_train']} training + {metrics['n_val']} "
          f"validation clips: {1000 * esclab:.2f} ms per training clip; accuracy {metrics['accuracy']:.3f} "
          f"after {metrics['epochs']} epochs ({load()})", flush=True)
    run([sys.executable, str(HERE / "plain_pipeline.py"), "features", "--data", args.data, "--out", str(tmp / "plain")],
        PLAIN_ENV)  # untimed
    out = run([sys.executable, str(HERE / "plain_pipeline.py"), "train", "--data", args.data,
               "--features", str(tmp / "plain")])
    print(out.strip(), f"({load()})")
    plain = float(re.search(r"([\d.]+) ms per clip", out).group(1)) / 1000
    print(f"ratio esclab / plain per training clip: {esclab / plain:.2f}")


if __name__ == "__main__":
    main()
