"""Lightning DDP on CPU (gloo) with two processes trains and evaluates a tiny model through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest


@pytest.mark.slow  # spawns two Lightning processes (~20 s on 2 cores); `make test-all` runs it
def test_cv_with_two_ddp_processes(tiny_overrides, tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "esclab.cli", "-v", "cv", "--config", "configs/experiment/paper_cnn.yaml",
            "--folds", "1", "--devices", "2", "--strategy", "ddp", "--out", str(out)]
    for o in tiny_overrides:
        args += ["--set", o]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Starting with 2 processes" in proc.stderr + proc.stdout  # Lightning's INFO line: -v shows it
    metrics = json.loads((out / "fold_1" / "metrics.json").read_text())
    assert metrics["devices"] == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["folds"]["1"]["accuracy"] == metrics["accuracy"]
    preds = pd.read_csv(out / "fold_1" / "predictions.csv")
    assert len(preds) == 6 and preds["clip_id"].is_unique  # the whole test fold, written once
    assert proc.stdout.count("run folder") == proc.stdout.count("fold 1: accuracy") == 1  # only rank 0 reports
