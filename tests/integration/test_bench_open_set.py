"""The open-set benchmark (``benchmarks/bench_open_set.py``) end to end on the tiny ESC-50 fixture."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_open_set.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_open_set", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_class_split_is_seeded_and_disjoint():
    bench = load_bench()
    names = [f"c{i}" for i in range(50)]
    known, unknown = bench.split_classes(names, 10, seed=0)
    assert len(known) == 40 and len(unknown) == 10 and not set(known) & set(unknown)
    assert bench.split_classes(names, 10, seed=0) == (known, unknown)
    assert bench.split_classes(names, 10, seed=1) != (known, unknown)


def test_open_set_benchmark_trains_on_known_classes_and_scores_the_unknown_ones(esc50_mini: Path, tmp_path: Path):
    bench = load_bench()
    result = bench.main(["--data", str(esc50_mini), "--out", str(tmp_path / "open"), "--config", "paper_cnn",
                         "--unknown", "1", "--seed", "0",
                         *[arg for o in ["data.folds=[1,2,3]", "data.val_fraction=0.3", "train.max_epochs=1",
                                         "train.precision=32", "train.batch_size=2", "train.progress_bar=false",
                                         "model.kwargs.channels=[4,8,8]", "model.kwargs.dense_units=[8]",
                                         f"features.cache_dir={tmp_path / 'cache'}"] for arg in ("--set", o)]])
    assert len(result["known"]) == 2 and len(result["unknown"]) == 1
    trained = json.loads((tmp_path / "open" / "run" / "summary.json").read_text())["class_names"]
    assert sorted(trained) == sorted(result["known"])  # the unknown class was never trained on
    assert [f["n_unknown"] for f in result["folds"]] == [1, 1, 1]
    for fold in result["folds"]:
        assert 0.0 <= fold["auroc"] <= 1.0 and 0.0 <= fold["unknown_rejected"] <= 1.0
    assert json.loads((tmp_path / "open" / "open_set.json").read_text())["auroc_pooled"] == result["auroc_pooled"]
