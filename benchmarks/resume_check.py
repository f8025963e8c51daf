"""Kill a real fold with SIGKILL mid-epoch, resume it, and compare with an uninterrupted run.

The same command runs three times: once to be killed during epoch ``--kill-in-epoch`` (counted from
1, after ``last.ckpt`` of the epoch before it was written), once more to resume it, and once into a
fresh folder without interruption. The resumed fold must match the uninterrupted one: metrics
(times aside), per-clip predictions, and every per-epoch log row.

Usage::

    python benchmarks/resume_check.py --data ../shared/esc50 --out runs/resume_check \\
        -- --config configs/experiment/paper_cnn.yaml --folds 1 --set train.max_epochs=3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

TIMES = {"fit_time_s", "epoch_time_s"}


def saved_epoch(checkpoint: Path) -> int | None:
    """The 1-based epoch a ``last.ckpt`` holds, or ``None`` while there is none (or it is being written)."""
    try:  # memory-mapped: the epoch counter, not the weights and optimiser state, is read every second
        return int(torch.load(checkpoint, map_location="cpu", weights_only=False, mmap=True)["epoch"]) + 1
    except Exception:  # absent, or caught half-written
        return None


def esclab(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "esclab.cli", "cv", *args], start_new_session=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True, help="folder for the two runs (cut/, whole/)")
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--kill-in-epoch", type=int, default=3)
    parser.add_argument("cv_args", nargs=argparse.REMAINDER, help="after --: the esclab cv arguments")
    args = parser.parse_args()
    cv_args = [a for a in args.cv_args if a != "--"] + ["--data", args.data, "--no-report"]
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    cut, whole = out / "cut", out / "whole"
    last = cut / f"fold_{args.fold}" / "checkpoints" / "last.ckpt"

    proc = esclab([*cv_args, "--out", str(cut)])
    while proc.poll() is None and (saved_epoch(last) or 0) < args.kill_in_epoch - 1:
        time.sleep(1.0)
    time.sleep(2.0)  # into the next epoch
    if proc.poll() is not None:
        raise SystemExit("the run finished before it could be killed: raise train.max_epochs")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    print(f"killed during epoch {args.kill_in_epoch}; last.ckpt holds epoch {saved_epoch(last)}", flush=True)
    for folder in (cut, whole):
        if esclab([*cv_args, "--out", str(folder)]).wait() != 0:
            raise SystemExit(f"esclab cv failed for {folder}")

    fold = f"fold_{args.fold}"
    a, b = (json.loads((f / fold / "metrics.json").read_text()) for f in (cut, whole))
    same_metrics = {k: v for k, v in a.items() if k not in TIMES} == {k: v for k, v in b.items() if k not in TIMES}
    same_predictions = pd.read_csv(cut / fold / "predictions.csv").equals(pd.read_csv(whole / fold / "predictions.csv"))
    log_a, log_b = (pd.read_csv(f / fold / "logs" / "metrics.csv") for f in (cut, whole))
    same_log = log_a[log_b.columns].reset_index(drop=True).round(6).equals(log_b.round(6))
    env = json.loads((cut / "env.json").read_text())
    print(json.dumps({"same_metrics": same_metrics, "same_predictions": same_predictions, "same_log": same_log,
                      "accuracy_resumed": a["accuracy"], "accuracy_uninterrupted": b["accuracy"],
                      "fit_time_s_resumed": a["fit_time_s"], "fit_time_s_uninterrupted": b["fit_time_s"],
                      "log_epochs_resumed": sorted(log_a["epoch"].dropna().astype(int).unique().tolist()),
                      "sessions": len(env["sessions"])}, indent=2))
    if not (same_metrics and same_predictions and same_log):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
