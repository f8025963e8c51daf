"""The inner cross-validation data of issue 23 (``benchmarks/finetune_selection/inner_cv/make_inner_csv.py``):
ESC-50 without one official fold, as a folder dataset that keeps the official folds and source recordings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from esclab.data.folder import load_folder

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
