"""Inner cross-validation data: ESC-50 without one official fold, by ``data.exclude_folds`` (``--exclude-folds``)
or as the folder-dataset CSV of issue 23 (``benchmarks/finetune_selection/inner_cv/make_inner_csv.py``), which
keeps the official folds and source recordings."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from esclab.cli import main
from esclab.config import load_config
from esclab.data.folder import load_folder

EXPERIMENT = "configs/experiment/paper_cnn.yaml"
SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "finetune_selection" / "inner_cv" / "make_inner_csv.py"


def load_script():
    spec = importlib.util.spec_from_file_location("make_inner_csv", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_outer_fold_is_left_out_and_folds_and_groups_are_kept(esc50_mini: Path, tmp_path: Path):
    out = load_script().main(["--data", str(esc50_mini), "--outer-fold", "1", "--out", str(tmp_path / "inner.csv")])
    meta = pd.read_csv(esc50_mini / "meta" / "esc50.csv")
    rows = pd.read_csv(out)
    kept = meta[meta["fold"] != 1]
    assert len(rows) == len(kept) and set(rows["fold"]) == {2, 3}
    assert list(rows["group"]) == list(kept["src_file"]) and list(rows["label"]) == list(kept["category"])
    table = load_folder(out, root=esc50_mini)
    assert all(Path(p).is_file() for p in table.clips["path"])
    assert sorted(table.clips["fold"].unique()) == [2, 3]


def test_a_clip_without_audio_is_named(esc50_mini: Path):
    meta = pd.read_csv(esc50_mini / "meta" / "esc50.csv")
    meta.loc[len(meta)] = ["9-999-A-0.wav", 2, 0, "dog", True, 999, "A"]
    with pytest.raises(FileNotFoundError, match="9-999-A-0.wav"):
        load_script().inner_rows(meta, esc50_mini / "audio", outer_fold=1)


def _inner_cv(root: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["cv", "--config", EXPERIMENT, "--data", str(root), "--exclude-folds", "1", "--folds", "2,3",
            "--out", str(tmp_path / "run"), "--no-report", "--set", f"features.cache_dir={tmp_path / 'cache'}",
            "--set", "train.max_epochs=1", "--set", "data.val_fraction=0", "--set", "train.progress_bar=false",
            *extra]


def test_exclude_folds_cross_validates_the_others_without_reading_the_left_out_fold(esc50_mini: Path,
                                                                                      tmp_path: Path):
    """``--exclude-folds 1 --folds 2,3``: each inner fold trains on the other one alone and is tested on itself;
    no log-mel of a fold-1 clip is computed."""
    assert main(_inner_cv(esc50_mini, tmp_path)) == 0
    meta = pd.read_csv(esc50_mini / "meta" / "esc50.csv")
    for fold, other in ((2, 3), (3, 2)):
        metrics = json.loads((tmp_path / "run" / f"fold_{fold}" / "metrics.json").read_text())
        assert metrics["n_train"] == int((meta["fold"] == other).sum())
        assert metrics["n_test"] == int((meta["fold"] == fold).sum())
        tested = pd.read_csv(tmp_path / "run" / f"fold_{fold}" / "predictions.csv")["clip_id"]
        assert sorted(tested) == sorted(Path(f).stem for f in meta.loc[meta["fold"] == fold, "filename"])
    cached = [f.name for f in (tmp_path / "cache").rglob("*.npy")]
    assert cached and not [name for name in cached if name.startswith("1-")]
    assert load_config(tmp_path / "run" / "config.yaml").data.exclude_folds == [1]


def test_a_missing_clip_of_the_left_out_fold_does_not_stop_the_run(esc50_mini: Path, tmp_path: Path):
    copy = tmp_path / "esc50"
    shutil.copytree(esc50_mini, copy)
    (copy / "audio" / "1-100032-A-0.ogg").unlink()
    assert main(_inner_cv(copy, tmp_path)) == 0
    assert json.loads((tmp_path / "run" / "fold_2" / "metrics.json").read_text())["skipped_test_clips"] == 0


@pytest.mark.parametrize(("options", "message"), [
    (["--exclude-folds", "1", "--folds", "1,2"], "must not share a fold with data.folds"),
    (["--exclude-folds", "7", "--folds", "2,3"], r"data.exclude_folds \[7\] are not in the dataset"),
])
def test_a_left_out_fold_that_is_tested_or_absent_is_an_error(esc50_mini: Path, tmp_path: Path, capsys, options,
                                                               message):
    args = ["cv", "--config", EXPERIMENT, "--data", str(esc50_mini), *options, "--out", str(tmp_path / "run"),
            "--no-report", "--set", f"features.cache_dir={tmp_path / 'cache'}"]
    assert main(args) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "cache").exists()
