"""Train options: `max_time_min` (equal wall-clock budget per fold, even inside epoch 1), `profiler`, and
test-time views (`augment.tta_views`)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from esclab.config import load_config
from esclab.train.cv import run_cv


def test_budget_that_ends_in_the_first_epoch_still_tests_and_reports(tiny_overrides, tmp_path):
    cfg = load_config("configs/experiment/paper_cnn.yaml",
                      [*tiny_overrides, "data.folds=[1]", "train.max_epochs=50", "train.batch_size=1",
                       "train.max_time_min=0.000001"])
    result = run_cv(cfg, tmp_path / "run", progress=False)
    metrics = json.loads((tmp_path / "run" / "fold_1" / "metrics.json").read_text())
    assert 1 <= metrics["steps"] < metrics["n_train"]  # stopped inside the first epoch
    assert metrics["n_test"] > 0 and 0.0 <= metrics["accuracy"] <= 1.0
    assert (tmp_path / "run" / "fold_1" / "model.ckpt").is_file()
    assert result.summary["folds"]["1"]["epoch_time_s"] is None


def test_budget_stops_before_max_epochs(tiny_overrides, tmp_path):
    unlimited = load_config("configs/experiment/paper_cnn.yaml",
                            [*tiny_overrides, "data.folds=[1]", "train.max_epochs=3"])
    run_cv(unlimited, tmp_path / "full", progress=False)
    capped = load_config("configs/experiment/paper_cnn.yaml",
                         [*tiny_overrides, "data.folds=[1]", "train.max_epochs=3", "train.max_time_min=0.000001"])
    run_cv(capped, tmp_path / "capped", progress=False)
    full, cut = (json.loads((tmp_path / name / "fold_1" / "metrics.json").read_text()) for name in ("full", "capped"))
    assert cut["steps"] < full["steps"]
    assert full["truncated"] is False and full["completed_epochs"] == full["planned_epochs"] == 3
    assert cut["truncated"] is True and cut["completed_epochs"] < 3 and "stopped the fold" in cut["warning"]
    summary = json.loads((tmp_path / "capped" / "summary.json").read_text())
    assert summary["truncated_folds"] == [1] and "fold 1: train.max_time_min" in summary["warnings"][0]


def test_a_truncated_one_cycle_schedule_says_it_never_annealed(tiny_overrides, tmp_path):
    cfg = load_config("configs/experiment/paper_cnn.yaml",
                      [*tiny_overrides, "data.folds=[1]", "train.max_epochs=3", "train.lr_schedule=onecycle",
                       "train.max_time_min=0.000001"])
    run_cv(cfg, tmp_path / "run", progress=False)
    metrics = json.loads((tmp_path / "run" / "fold_1" / "metrics.json").read_text())
    assert metrics["truncated"] and "one-cycle schedule never reached its annealing end" in metrics["warning"]


def test_simple_profiler_writes_where_the_time_went(tiny_overrides, tmp_path):
    cfg = load_config("configs/experiment/paper_cnn.yaml",
                      [*tiny_overrides, "data.folds=[1]", "train.max_epochs=1", "train.profiler=simple"])
    run_cv(cfg, tmp_path / "run", progress=False)
    text = (tmp_path / "run" / "fold_1" / "fit-profile.txt").read_text()
    assert "run_training_batch" in text and "train_dataloader_next" in text


def test_test_time_views_change_the_scores_of_the_same_model(tiny_overrides, tmp_path):
    probs = {}
    for views in (1, 3):
        cfg = load_config("configs/experiment/paper_cnn.yaml",
                          [*tiny_overrides, "data.folds=[1]", "train.max_epochs=2", f"augment.tta_views={views}"])
        run_cv(cfg, tmp_path / f"views_{views}", progress=False)
        frame = pd.read_csv(tmp_path / f"views_{views}" / "fold_1" / "predictions.csv")
        probs[views] = frame.filter(regex=r"^p_\d+$").to_numpy()
    # Same seed, same weights: only the averaging over time-shifted views differs.
    assert probs[1].shape == probs[3].shape
    assert np.allclose(probs[3].sum(axis=1), 1.0, atol=1e-4)
    assert not np.allclose(probs[1], probs[3], atol=1e-4)
