"""The accuracy recipe (configs/experiment/best_cpu.yaml) runs end to end: bank, SpecAugment, mixup,
AdamW + one-cycle over all training folds (no validation split), test on the held-out fold."""

from __future__ import annotations

import json

import pandas as pd

from esclab.config import load_config
from esclab.train.cv import run_cv
from tests.conftest import TINY_OVERRIDES

# The tiny set's front end and loop, the recipe's own model family at toy width.
TINY_CONFORMER = [o for o in TINY_OVERRIDES if not o.startswith(("model.", "data.val_fraction"))] + [
    "model.kwargs.d_model=16", "model.kwargs.num_blocks=1",
    "model.kwargs.num_heads=2", "model.kwargs.kernel_size=3",
    "train.max_epochs=3", "train.num_threads=null",
]


def test_recipe_trains_on_all_training_clips_and_tests(tone_dataset, tmp_path):
    cfg = load_config("configs/experiment/best_cpu.yaml",
                      [*TINY_CONFORMER, f"data.csv={tone_dataset}", f"features.cache_dir={tmp_path / 'cache'}",
                       "data.folds=[1]"])
    assert cfg.data.val_fraction == 0.0 and cfg.train.lr_schedule == "onecycle" and cfg.augment.bank_size == 4
    result = run_cv(cfg, tmp_path / "run", progress=False)
    metrics = json.loads((tmp_path / "run" / "fold_1" / "metrics.json").read_text())
    assert metrics["n_val"] == 0 and metrics["n_train"] > 0 and metrics["n_test"] > 0
    assert metrics["model"] == "conformer" and metrics["epochs"] == 3
    assert 0.0 <= result.summary["folds"]["1"]["accuracy"] <= 1.0
    # One cycle: the learning rate (logged at each epoch's start) warms up from far below the peak, then anneals.
    log = pd.read_csv(tmp_path / "run" / "fold_1" / "logs" / "metrics.csv")
    lrs = log["lr-AdamW"].dropna().tolist()
    assert len(lrs) == 3 and lrs[0] < 0.1 * cfg.train.lr and lrs[1] > lrs[0] and lrs[2] < lrs[1]
