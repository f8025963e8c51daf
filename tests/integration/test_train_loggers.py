"""``train.logger``: TensorBoard and MLflow curves under ``fold_K/logs`` beside the CSV the report reads;
a logger whose package is missing stops the run before any data is prepared."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

import esclab.train.loggers as loggers
from esclab.cli import main
from esclab.config import ConfigError, load_config
from esclab.train.cv import run_cv
from esclab.train.loggers import build_loggers

EXPERIMENT = "configs/experiment/paper_cnn.yaml"


def test_csv_is_the_default_and_always_written(tmp_path):
    assert load_config(EXPERIMENT).train.logger == "csv"
    (csv,) = build_loggers("csv", tmp_path / "fold_1", "x")
    assert isinstance(csv, CSVLogger) and Path(csv.log_dir) == tmp_path / "fold_1" / "logs"
    first, tensorboard = build_loggers("tensorboard", tmp_path / "fold_1", "x")
    assert isinstance(first, CSVLogger) and isinstance(tensorboard, TensorBoardLogger)
    assert Path(tensorboard.log_dir) == tmp_path / "fold_1" / "logs"


def test_tensorboard_curves_land_beside_the_csv(tiny_overrides, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    run_cv(load_config(EXPERIMENT, [*tiny_overrides, "data.folds=[1]", "train.logger=tensorboard"]), out,
           progress=False)
    logs = out / "fold_1" / "logs"
    events = EventAccumulator(str(logs))
    events.Reload()
    assert {"train_loss", "val_loss", "val_acc"} <= set(events.Tags()["scalars"])
    assert len(events.Scalars("val_loss")) == 2  # one point per epoch
    assert len(pd.read_csv(logs / "metrics.csv")["val_loss"].dropna()) == 2


def test_mlflow_runs_land_under_the_fold_logs(tiny_overrides, tmp_path):
    pytest.importorskip("mlflow", reason="MLflow is optional")
    out = tmp_path / "run"
    run_cv(load_config(EXPERIMENT, [*tiny_overrides, "data.folds=[1]", "train.logger=mlflow"]), out,
           progress=False)
    logs = out / "fold_1" / "logs"
    (val_loss,) = (logs / "mlruns").glob("*/*/metrics/val_loss")
    assert len(val_loss.read_text().splitlines()) == 2
    assert (logs / "metrics.csv").is_file()


def test_missing_mlflow_stops_before_the_data_is_prepared(tiny_overrides, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(loggers, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="train.logger=mlflow needs the mlflow package.*pip install mlflow"):
        build_loggers("mlflow", tmp_path / "fold_1", "x")
    out = tmp_path / "run"
    args = [arg for o in [*tiny_overrides, "train.logger=mlflow"] for arg in ("--set", o)]
    assert main(["cv", "--config", EXPERIMENT, "--out", str(out), "--no-report", *args]) == 2
    assert "pip install mlflow" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_the_mlflow_file_store_variable_is_scoped(monkeypatch):
    from esclab.train.loggers import FILE_STORE_VARIABLE, file_store_allowed

    monkeypatch.delenv(FILE_STORE_VARIABLE, raising=False)
    with file_store_allowed():
        assert os.environ[FILE_STORE_VARIABLE] == "true"
    assert FILE_STORE_VARIABLE not in os.environ
    monkeypatch.setenv(FILE_STORE_VARIABLE, "false")  # a user's own choice is kept
    with file_store_allowed():
        assert os.environ[FILE_STORE_VARIABLE] == "false"
    assert os.environ[FILE_STORE_VARIABLE] == "false"
