"""A run whose stderr is not a terminal says one line per epoch and one per finished fold."""

from __future__ import annotations

import logging
import re

from esclab.config import load_config
from esclab.train.cv import run_cv

EXPERIMENT = "configs/experiment/paper_cnn.yaml"


def test_run_cv_logs_one_line_per_epoch_and_per_fold(tiny_overrides, tmp_path, caplog):
    cfg = load_config(EXPERIMENT, [*tiny_overrides, "train.max_epochs=2"])
    with caplog.at_level(logging.INFO, logger="esclab"):
        run_cv(cfg, tmp_path / "run", progress=False)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("esclab")]
    epochs = [m for m in messages if " · epoch " in m]
    assert [m.split(" · ")[:2] for m in epochs] == [["fold 1/2", "epoch 1/2"], ["fold 1/2", "epoch 2/2"],
                                                    ["fold 2/2", "epoch 1/2"], ["fold 2/2", "epoch 2/2"]]
    assert all(re.search(r"train loss \d+\.\d{3} acc \d\.\d{3} · val loss \d+\.\d{3} acc \d\.\d{3} · fold \S+, ETA",
                         m) for m in epochs)
    assert "run ETA" in epochs[0] and "run ETA" not in epochs[-1]
    done = [m for m in messages if " done: accuracy " in m]
    assert len(done) == 2 and done[0].startswith("fold 1/2 done: accuracy ")
