"""Cross-validation end to end through the CLI: files, resume, conflicts, reproducibility, bad input."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from esclab.bundle import load_bundle
from esclab.cli import main
from esclab.config import load_config
from esclab.train.cv import run_cv

EXPERIMENT = "configs/experiment/paper_cnn.yaml"
RUN_FILES = ["config.yaml", "env.json", "summary.json", "skipped_files.csv", "confusion_matrix.csv", "confusion_matrix.png",
             "per_class_report.csv", "report.html", "report.json"]
FOLD_FILES = ["metrics.json", "predictions.csv", "split.csv", "model.ckpt", "checkpoints/last.ckpt"]


def cli_args(overrides: list[str]) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


@pytest.fixture
def corrupt_dataset(tone_dataset):
    """The tone dataset plus one corrupt clip and one row whose file is absent."""
    rows = pd.read_csv(tone_dataset)
    (tone_dataset.parent / "audio" / "broken.wav").write_bytes(b"RIFF....WAVEfmt not really")
    extra = pd.DataFrame([{"path": "audio/broken.wav", "label": "class_0", "fold": 1},
                          {"path": "audio/absent.wav", "label": "class_1", "fold": 2}])
    pd.concat([rows, extra]).to_csv(tone_dataset, index=False)
    return tone_dataset


def test_two_fold_cv_through_cli_writes_every_file(tiny_overrides, corrupt_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["cv", "--config", EXPERIMENT, "--folds", "1,2", "--out", str(out),
                 *cli_args([*tiny_overrides, "train.calibration_min_clips=1"])])
    assert code == 0
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    for fold in (1, 2):
        for name in FOLD_FILES:
            assert (out / f"fold_{fold}" / name).is_file(), f"fold_{fold}/{name}"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["folds"]) == {"1", "2"} and 0 <= summary["accuracy_mean"] <= 1
    assert summary["skipped"] == 2
    skipped = pd.read_csv(out / "skipped_files.csv")
    assert sorted(p.rsplit("/", 1)[1] for p in skipped["path"]) == ["absent.wav", "broken.wav"]
    assert "file not found" in set(skipped["reason"]) and skipped["reason"].str.startswith("cannot decode").any()
    assert sorted(skipped["fold"]) == [1, 2]
    for fold in (1, 2):  # one unusable clip in each test fold, counted where it matters
        assert json.loads((out / f"fold_{fold}" / "metrics.json").read_text())["skipped_test_clips"] == 1
    assert summary["skipped_test_clips"] == {"1": 1, "2": 1}
    matrix = pd.read_csv(out / "confusion_matrix.csv", index_col=0)
    assert matrix.to_numpy().sum() == 12  # every usable clip tested exactly once
    report = pd.read_csv(out / "per_class_report.csv")
    assert list(report.columns) == ["class", "precision", "recall", "f1", "support"]
    preds = pd.read_csv(out / "fold_1" / "predictions.csv")
    assert set(preds["fold"]) == {1} and {"p_0", "p_1", "p_2", "confidence"} <= set(preds.columns)
    bundle = load_bundle(out / "fold_1" / "model.ckpt")
    assert bundle.class_names == ["class_0", "class_1", "class_2"]
    assert "accuracy" in capsys.readouterr().out
    # calibrated on the grouped validation split: the temperature is in the head, the threshold in the bundle
    for fold in (1, 2):
        calibration = json.loads((out / f"fold_{fold}" / "metrics.json").read_text())["calibration"]
        assert calibration["source"] == "the grouped validation split" and calibration["n"] >= 1
        assert calibration["temperature"] > 0 and 0 <= calibration["reject_below"] <= 1
        assert load_bundle(out / f"fold_{fold}" / "model.ckpt").reject_below == calibration["reject_below"]
    keys = ("ece_before", "ece_after", "temperature")
    assert json.loads((out / "report.json").read_text())["calibration"] == {k: summary["calibration"][k] for k in keys}
    assert "Calibration and rejection" in (out / "report.html").read_text()


def test_interrupted_run_resumes_at_first_unfinished_fold(tiny_overrides, tmp_path, monkeypatch):
    out = tmp_path / "run"
    cfg = load_config(EXPERIMENT, tiny_overrides)
    run_cv(cfg, out, progress=False)
    first = json.loads((out / "fold_1" / "metrics.json").read_text())
    assert first["calibration"] is None  # 1-2 validation clips: fewer than train.calibration_min_clips
    # Simulate an interruption during fold 2: its results are gone, its last.ckpt is kept.
    (out / "fold_2" / "metrics.json").unlink()
    trained = []
    import esclab.train.cv as cv

    real = cv.train_fold
    monkeypatch.setattr(cv, "train_fold", lambda c, d, fold, *a, **k: trained.append(fold) or real(c, d, fold, *a, **k))
    result = run_cv(cfg, out, progress=False)
    assert trained == [2]
    assert result.fold_metrics[1] == first


def test_same_seed_same_metrics(tiny_overrides, tmp_path):
    cfg = load_config(EXPERIMENT, [*tiny_overrides, "data.folds=[1]"])
    a = run_cv(cfg, tmp_path / "a", progress=False).fold_metrics[1]
    b = run_cv(cfg, tmp_path / "b", progress=False).fold_metrics[1]
    pa = pd.read_csv(tmp_path / "a" / "fold_1" / "predictions.csv")
    pb = pd.read_csv(tmp_path / "b" / "fold_1" / "predictions.csv")
    assert a["accuracy"] == b["accuracy"]
    pd.testing.assert_frame_equal(pa, pb)


def test_run_folder_with_other_config_is_refused(tiny_overrides, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["cv", "--config", EXPERIMENT, "--folds", "1", "--out", str(out), *cli_args(tiny_overrides)]
    assert main(args) == 0
    assert main([*args, "--set", "train.lr=0.1"]) == 2
    err = capsys.readouterr().err
    assert "different config" in err and "train.lr" in err


@pytest.mark.parametrize("extra,message", [
    (["--set", "train.batch_size=-3"], "train.batch_size must be >= 1"),
    (["--folds", "7"], "data.folds [7] are not in the dataset"),
    (["--config", "configs/experiment/nope.yaml"], "config file not found"),
    (["--set", "model.name=resnet18"], "cannot be built with options"),
])
def test_bad_input_is_one_clear_line(tiny_overrides, tmp_path, capsys, extra, message):
    args = ["cv", "--config", EXPERIMENT, "--out", str(tmp_path / "run"), *cli_args(tiny_overrides), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_esc50_points_at_data_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ESCLAB_DATA", raising=False)
    code = main(["cv", "--config", EXPERIMENT, "--data", str(tmp_path / "none"), "--set", "data.download=false",
                 "--out", str(tmp_path / "run")])
    assert code == 2 and "--data PATH" in capsys.readouterr().err


def test_features_and_models_commands(esc50_mini, tmp_path, capsys):
    assert main(["features", "--config", EXPERIMENT, "--data", str(esc50_mini),
                 "--set", f"features.cache_dir={tmp_path}"]) == 0
    assert "9 clips cached (128 mels x 215 frames)" in capsys.readouterr().out
    assert main(["models", "paper*"]) == 0
    assert "paper_cnn" in capsys.readouterr().out.split()


def test_real_clips_end_to_end(esc50_mini, tmp_path):
    """The tiny real fixture through one fold of the full-size paper CNN, one epoch."""
    cfg = load_config(EXPERIMENT, ["data.folds=[3]", f"data.root={esc50_mini}", f"features.cache_dir={tmp_path}",
                                   "train.max_epochs=1", "train.progress_bar=false", "data.val_fraction=0.0"])
    result = run_cv(cfg, tmp_path / "run", progress=False)
    assert result.fold_metrics[3]["n_test"] == 3
    shutil.rmtree(tmp_path / "run")


def test_a_fit_without_validation_calibrates_on_a_held_out_split_and_tests_the_last_epoch(tiny_overrides, tmp_path):
    cfg = load_config(EXPERIMENT, [*tiny_overrides, "data.folds=[1]", "data.val_fraction=0",
                                   "train.calibration_split=0.25", "train.calibration_min_clips=1"])
    metrics = run_cv(cfg, tmp_path / "run", progress=False).fold_metrics[1]
    assert metrics["checkpoint_rule"] == "last epoch" and metrics["n_val"] == 0 and metrics["n_calibration"] >= 1
    assert metrics["calibration"]["source"].startswith("a grouped calibration split held out of training")
    split = pd.read_csv(tmp_path / "run" / "fold_1" / "split.csv")
    assert set(split["role"]) == {"train", "calibration", "test"}
    assert (split["role"] == "calibration").sum() == metrics["n_calibration"]
