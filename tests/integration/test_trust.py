"""What a reviewer checks: grouped validation, resume equal to an uninterrupted run, provenance, complete data."""

from __future__ import annotations

import json
import shutil
import subprocess

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from esclab.bundle import load_bundle
from esclab.cli import main
from esclab.config import load_config
from esclab.data.esc50 import IncompleteDatasetError
from esclab.train.cv import run_cv
from esclab.train.trainer import read_checkpoint

EXPERIMENT = "configs/experiment/paper_cnn.yaml"
# Mixup, SpecAugment and a waveform bank: every random draw of training is exercised.
RANDOM_TRAINING = ["augment=light", "augment.mixup_alpha=0.4", "train.max_epochs=3", "data.folds=[1]"]
TIMES = ("fit_time_s", "epoch_time_s")


class Crash(L.Callback):
    """Dies inside the third epoch, after ``last.ckpt`` of the second was written: a ``kill -9`` stand-in."""

    def on_train_batch_start(self, trainer, *args):
        if trainer.current_epoch == 2:
            raise RuntimeError("killed")


def _without_times(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in TIMES}


@pytest.mark.parametrize("averaging", [[], ["train.weight_averaging=ema", "train.ema_decay=0.9"],
                                       ["train.weight_averaging=swa", "train.average_from_epoch=1"]],
                         ids=["plain", "ema", "swa"])
def test_a_resumed_fold_equals_an_uninterrupted_one(tiny_overrides, tmp_path, monkeypatch, averaging):
    """Weight averaging too: the average so far is in ``last.ckpt`` and goes on after the resume."""
    cfg = load_config(EXPERIMENT, [*tiny_overrides, *RANDOM_TRAINING, *averaging])
    whole = run_cv(cfg, tmp_path / "whole", progress=False).fold_metrics[1]

    import esclab.train.cv as cv

    real = cv.build_trainer
    monkeypatch.setattr(cv, "build_trainer", lambda c, d, extra, **k: real(c, d, [*extra, Crash()], **k))
    with pytest.raises(RuntimeError, match="killed"):
        run_cv(cfg, tmp_path / "cut", progress=False)
    fold = tmp_path / "cut" / "fold_1"
    assert (fold / "checkpoints" / "last.ckpt").is_file() and not (fold / "metrics.json").exists()
    before_kill = [state["fit_time_s"] for key, state in read_checkpoint(fold / "checkpoints" / "last.ckpt")
                   ["callbacks"].items() if key.startswith("FitClock")]
    assert len(before_kill) == 1 and before_kill[0] > 0
    monkeypatch.setattr(cv, "build_trainer", real)
    resumed = run_cv(cfg, tmp_path / "cut", progress=False).fold_metrics[1]

    assert _without_times(resumed) == _without_times(whole)
    pd.testing.assert_frame_equal(pd.read_csv(fold / "predictions.csv"),
                                  pd.read_csv(tmp_path / "whole" / "fold_1" / "predictions.csv"))
    # Every epoch's log row survives the resume, with the values an uninterrupted run logged.
    log_whole = pd.read_csv(tmp_path / "whole" / "fold_1" / "logs" / "metrics.csv")
    log_cut = pd.read_csv(fold / "logs" / "metrics.csv")[log_whole.columns]
    pd.testing.assert_frame_equal(log_cut.reset_index(drop=True), log_whole, check_exact=False, rtol=1e-6)
    assert sorted(log_cut["epoch"].dropna().unique()) == [0, 1, 2]
    # Fit time adds up over the two sessions (two epochs before the kill, one after): the resumed fold's
    # total starts from what the killed session had saved (no comparison of wall times across runs).
    assert resumed["fit_time_s"] >= round(before_kill[0], 1)
    env = json.loads((tmp_path / "cut" / "env.json").read_text())
    assert len(env["sessions"]) == 2 and env["sessions"][1]["folds_finished"] == [1]
    assert env["sessions"][0]["end"] is None  # the killed session never ended


def test_a_fold_is_done_only_with_a_complete_metrics_json(tiny_overrides, tmp_path, monkeypatch):
    """A kill while fold 2's ``metrics.json`` is written leaves none: the resumed run trains fold 2 again, not
    fold 1. A truncated ``metrics.json`` (what a write in place killed midway leaves) does not count either."""
    import esclab.runs as runs
    import esclab.train.cv as cv

    cfg = load_config(EXPERIMENT, [*tiny_overrides, "train.max_epochs=1"])
    out = tmp_path / "run"
    real_write = runs.atomic_write

    def killed_writing_fold_2_metrics(path, data):
        def half(fh):
            fh.write(data.encode()[:len(data) // 2])
            raise RuntimeError("killed")

        return real_write(path, half if path == out / "fold_2" / "metrics.json" else data)

    monkeypatch.setattr(runs, "atomic_write", killed_writing_fold_2_metrics)
    with pytest.raises(RuntimeError, match="killed"):
        run_cv(cfg, out, progress=False)
    assert (out / "fold_1" / "metrics.json").is_file() and not (out / "fold_2" / "metrics.json").exists()
    monkeypatch.setattr(runs, "atomic_write", real_write)
    trained, real_train = [], cv.train_fold

    def train_fold(cfg, data, fold, *args, **kwargs):
        trained.append(fold)
        return real_train(cfg, data, fold, *args, **kwargs)

    monkeypatch.setattr(cv, "train_fold", train_fold)
    run_cv(cfg, out, progress=False)
    assert trained == [2]
    metrics = out / "fold_1" / "metrics.json"
    metrics.write_text(metrics.read_text()[:40])
    trained.clear()
    result = run_cv(cfg, out, progress=False)
    assert trained == [1] and json.loads(metrics.read_text()) == result.fold_metrics[1]


def test_each_fold_writes_its_split_and_validation_shares_no_recording(tiny_overrides, tone_dataset, tmp_path):
    rows = pd.read_csv(tone_dataset)
    rows["group"] = [f"rec{i // 2}" for i in range(len(rows))]  # two clips cut from each recording
    rows.to_csv(tone_dataset, index=False)
    cfg = load_config(EXPERIMENT, [*tiny_overrides, "data.folds=[1]", "train.max_epochs=1",
                                   "data.val_fraction=0.4"])
    metrics = run_cv(cfg, tmp_path / "run", progress=False).fold_metrics[1]
    split = pd.read_csv(tmp_path / "run" / "fold_1" / "split.csv")
    assert list(split.columns) == ["clip_id", "role"] and set(split["role"]) == {"train", "val", "test"}
    group = dict(zip(rows["path"].str.split("/").str[-1].str.removesuffix(".wav"), rows["group"], strict=True))
    sides = split.assign(group=split["clip_id"].map(group)).groupby("group")["role"].agg(set)
    assert not any({"train", "val"} <= roles for roles in sides)
    assert metrics["val_groups_shared_with_train"] == 0
    assert metrics["checkpoint_rule"].startswith("best val_") and 1 <= metrics["tested_epoch"] <= 1


def test_env_json_records_code_machine_and_command(tiny_overrides, tone_dataset, tmp_path):
    cfg = load_config(EXPERIMENT, [*tiny_overrides, "data.folds=[1]", "train.max_epochs=1"])
    run_cv(cfg, tmp_path / "run", progress=False)
    env = json.loads((tmp_path / "run" / "env.json").read_text())
    session = env["sessions"][0]
    assert {"argv", "start", "end", "commit", "dirty", "versions", "machine"} <= set(session)
    assert session["end"] and {"esclab", "torch", "lightning", "numpy"} <= set(env["versions"])
    assert env["machine"]["cpu"] and env["machine"]["torch_threads"] >= 1
    assert set(env["machine"]["cpu_flags"]) <= {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}
    assert env["machine"]["cpu_capability"] == str(torch.backends.cpu.get_cpu_capability())
    assert session["fold_precision"] == {"1": "32-true"}
    data = session["data"]  # which copy of the data: its metadata and file list by checksum, its rates
    assert data["metadata"] == str(tone_dataset.resolve()) and len(data["meta_sha256"]) == 64
    assert data["n_files"] == 12 and len(data["files_sha256"]) == 64 and data["sample_rates"] == {"8000": 12}
    card = (tmp_path / "run" / "MODEL_CARD.md").read_text()  # written with the summary; each bundle carries its facts
    assert "as stated by its owner (not known to esclab)" in card and "| 1 |" in card and "8000 Hz" in card
    assert load_bundle(tmp_path / "run" / "fold_1" / "model.ckpt").card["metrics"]["fold"] == 1


def test_untracked_files_make_the_tree_dirty(tmp_path):
    from esclab.provenance import git_state

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / ".gitignore").write_text("runs/\n")
    git("add", ".gitignore")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "x.json").write_text("{}")  # ignored: still clean
    assert git_state(tmp_path) | {"commit": None} == {"commit": None, "dirty": False, "untracked": 0}
    (tmp_path / "new.py").write_text("")
    assert git_state(tmp_path) | {"commit": None} == {"commit": None, "dirty": True, "untracked": 1}


def test_a_resume_at_another_commit_warns(tiny_overrides, tmp_path, caplog):
    cfg = load_config(EXPERIMENT, [*tiny_overrides, "data.folds=[1]", "train.max_epochs=1"])
    run_cv(cfg, tmp_path / "run", progress=False)
    env_path = tmp_path / "run" / "env.json"
    env = json.loads(env_path.read_text())
    env["sessions"][0]["commit"] = "0" * 40
    env_path.write_text(json.dumps(env))
    run_cv(cfg, tmp_path / "run", progress=False)
    assert "0000000000000000000000000000000000000000" in caplog.text and "not be comparable" in caplog.text


def test_skipped_files_are_appended_on_resume(tiny_overrides, tone_dataset, tmp_path):
    rows = pd.read_csv(tone_dataset)
    extra = pd.DataFrame([{"path": "audio/absent.wav", "label": "class_0", "fold": 1}])
    pd.concat([rows, extra]).to_csv(tone_dataset, index=False)
    cfg = load_config(EXPERIMENT, [*tiny_overrides, "data.folds=[1]", "train.max_epochs=1"])
    run_cv(cfg, tmp_path / "run", progress=False)
    pd.concat([rows, extra.assign(path="audio/gone.wav")]).to_csv(tone_dataset, index=False)
    run_cv(cfg, tmp_path / "run", progress=False)
    skipped = pd.read_csv(tmp_path / "run" / "skipped_files.csv")
    assert sorted(skipped["path"].str.split("/").str[-1]) == ["absent.wav", "gone.wav"]


@pytest.fixture
def esc50_with_a_missing_clip(esc50_mini, tmp_path):
    copy = tmp_path / "esc50"
    shutil.copytree(esc50_mini, copy)
    gone = sorted((copy / "audio").iterdir())[0]
    gone.unlink()
    return copy, gone.stem


def test_an_incomplete_esc50_copy_stops_before_any_work(esc50_with_a_missing_clip, tmp_path):
    root, missing = esc50_with_a_missing_clip
    cfg = load_config(EXPERIMENT, [f"data.root={root}", f"features.cache_dir={tmp_path / 'cache'}",
                                   "data.folds=[1]"])
    with pytest.raises(IncompleteDatasetError, match=f"{missing}.*--allow-missing"):
        run_cv(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "cache").exists()  # nothing was decoded


def test_allow_missing_runs_and_counts_the_missing_test_clip(esc50_with_a_missing_clip, tmp_path, capsys):
    root, missing = esc50_with_a_missing_clip
    args = ["cv", "--config", EXPERIMENT, "--data", str(root), "--folds", "1", "--out", str(tmp_path / "run"),
            "--no-report", "--set", f"features.cache_dir={tmp_path / 'cache'}", "--set", "train.max_epochs=1",
            "--set", "data.val_fraction=0", "--set", "train.progress_bar=false"]
    assert main(args) == 2 and missing in capsys.readouterr().err
    assert main([*args, "--allow-missing"]) == 0
    metrics = json.loads((tmp_path / "run" / "fold_1" / "metrics.json").read_text())
    assert metrics["skipped_test_clips"] == 1 and metrics["n_test"] == 2


def test_the_tested_network_and_its_bundle_are_the_weight_average(tiny_overrides, tmp_path):
    """SWA over the last epoch alone is the plain last epoch; from the first epoch on it is another network,
    and the fold's bundle (what ``predict`` and ``serve`` load) is that averaged network."""
    from esclab.audio import pad_or_trim
    from esclab.inference.predictor import Predictor

    base = [*tiny_overrides, "train.max_epochs=3", "data.folds=[1]", "data.val_fraction=0"]
    runs = {}
    for name, extra in {"plain": [], "last": ["train.weight_averaging=swa", "train.average_from_epoch=2"],
                        "all": ["train.weight_averaging=swa", "train.average_from_epoch=0"]}.items():
        run_cv(load_config(EXPERIMENT, [*base, *extra]), tmp_path / name, progress=False)
        runs[name] = pd.read_csv(tmp_path / name / "fold_1" / "predictions.csv")
    probs = [c for c in runs["plain"].columns if c.startswith("p_")]
    pd.testing.assert_frame_equal(runs["last"], runs["plain"])
    assert not np.allclose(runs["all"][probs].to_numpy(), runs["plain"][probs].to_numpy(), atol=1e-4)
    predictor = Predictor.from_checkpoint(tmp_path / "all" / "fold_1" / "model.ckpt")
    clips = [pad_or_trim(predictor.load(path), predictor.clip_samples) for path in runs["all"]["path"]]
    np.testing.assert_allclose(predictor.probabilities(clips), runs["all"][probs].to_numpy(), atol=1e-4)
