"""The event benchmark (``benchmarks/bench_events.py``) end to end on a fake run: tiny bundles, tone clips."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tests.conftest import tone
from tests.unit.test_inference import CLASSES, write_tiny_bundle

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_events.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_events", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def test_active_span_trims_to_the_sound():
    bench = load_bench()
    wave = np.r_[np.zeros(8000), tone(440, 0.5, 8000), np.zeros(8000)].astype(np.float32)
    start, end = bench.active_span(wave, 8000)
    assert abs(start - 8000) <= 400 and abs(end - 12000) <= 400  # within a 50-ms frame
    assert bench.active_span(np.zeros(800), 8000) == (0, 800)


def test_placed_events_do_not_overlap():
    bench = load_bench()
    rng = np.random.default_rng(0)
    for _ in range(20):
        onsets = bench.place_times([4.0, 1.0, 2.5], 30.0, 3.0, rng)
        ends = [o + length for o, length in zip(onsets, [4.0, 1.0, 2.5], strict=True)]
        assert onsets[0] >= 3.0 and ends[-1] <= 27.0
        assert all(b - a >= 3.0 for a, b in zip(ends, onsets[1:], strict=False))
    assert bench.place_times([20.0, 20.0], 30.0, 3.0, rng) is None


@pytest.fixture()
def fake_run(tmp_path: Path) -> Path:
    """Two folds, each a tiny untrained bundle and three test clips (a tone each, with silent padding)."""
    run = tmp_path / "run"
    for fold in (1, 2):
        (run / f"fold_{fold}").mkdir(parents=True)
        write_tiny_bundle(run / f"fold_{fold}" / "model.ckpt", seed=fold)
        rows = []
        for i, label in enumerate(CLASSES):
            path = tmp_path / "audio" / f"{fold}-{label}.wav"
            path.parent.mkdir(exist_ok=True)
            sf.write(path, np.r_[np.zeros(2000), tone(300 + 200 * i + 50 * fold, 0.6), np.zeros(2000)], 8000)
            rows.append({"path": path.name, "target": i, "label": label})
        pd.DataFrame(rows).to_csv(run / f"fold_{fold}" / "predictions.csv", index=False)
    return run


def test_benchmark_end_to_end(fake_run: Path, tmp_path: Path):
    pytest.importorskip("sed_eval")
    bench = load_bench()
    args = ["--run", str(fake_run), "--data", str(tmp_path / "audio"), "--recordings", "2", "--seed", "3",
            "--min-seconds", "10", "--max-seconds", "12", "--max-events", "3", "--separation", "1",
            "--reject-below", "0"]
    result = bench.main([*args, "--out", str(tmp_path / "a.json")])
    assert [f["fold"] for f in result["folds"]] == [1, 2] and result["pooled"]["recordings"] == 4
    for summary in [*result["folds"], result["pooled"]]:
        assert 0 <= summary["onset"]["f1"] <= 1 and summary["false_alarms_per_minute"] >= 0
        assert summary["reference_events"] >= 2 * summary["recordings"]
    for recording in result["recordings"]:
        assert 10 <= recording["duration_s"] <= 12
        assert all(r["offset"] - r["onset"] == pytest.approx(0.6, abs=0.06) for r in recording["reference"])
    assert json.loads((tmp_path / "a.json").read_text())["pooled"] == result["pooled"]
    again = bench.main([*args, "--out", str(tmp_path / "b.json")])
    assert again["recordings"] == result["recordings"]  # the seed fixes the soundscapes and so the events
