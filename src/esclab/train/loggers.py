"""Where a fold's training curves go (``train.logger``): Lightning's loggers, all under ``fold_K/logs``.

- ``csv`` (default): ``fold_K/logs/metrics.csv``. It is written whatever the choice: the report reads it.
- ``tensorboard``: event files beside it; ``tensorboard --logdir RUN`` shows every fold, live.
- ``mlflow`` (when MLflow is installed): a file store in ``fold_K/logs/mlruns``, one MLflow run per fold.
  MLflow 3 keeps its file store in maintenance mode behind ``MLFLOW_ALLOW_FILE_STORE=true``; esclab sets
  it, when unset, while the fold's MLflow client and store are made (and restores the environment after),
  so a run's curves stay files in the run folder (no database server):
  ``MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri RUN/fold_K/logs/mlruns``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger

from esclab.config import ConfigError
from esclab.runs import FoldDir

FILE_STORE_VARIABLE = "MLFLOW_ALLOW_FILE_STORE"


def check_logger(kind: str) -> None:
    """Raise :class:`ConfigError` for ``train.logger=mlflow`` without MLflow (TensorBoard is a dependency)."""
    if kind == "mlflow" and find_spec("mlflow") is None:
        raise ConfigError("train.logger=mlflow needs the mlflow package, which is not installed: "
                          "pip install mlflow (or choose train.logger=csv)")


def build_loggers(kind: str, fold_dir: Path, experiment: str) -> list[Logger]:
    """The CSV logger, plus the ``kind`` logger when it is not ``csv``; every file under ``fold_dir/logs``.

    Args:
        kind: ``csv``, ``tensorboard`` or ``mlflow`` (``train.logger``, checked by the config).
        fold_dir: the fold's folder, ``RUN/fold_K``.
        experiment: the MLflow experiment name (the config's ``name``); each fold is a run in it.

    Raises:
        ConfigError: ``mlflow`` without MLflow installed.
    """
    check_logger(kind)
    logs = FoldDir(fold_dir).logs
    loggers: list[Logger] = [CSVLogger(fold_dir, name=logs.name, version="")]  # first: trainer.log_dir is its
    if kind == "tensorboard":
        loggers.append(TensorBoardLogger(fold_dir, name=logs.name, version="", default_hp_metric=False))
    elif kind == "mlflow":
        _ = loggers[0].experiment  # the CSV log first: it warns about a folder MLflow has already filled
        mlflow = MLFlowLogger(experiment_name=experiment, run_name=fold_dir.name,
                              tracking_uri=(logs / "mlruns").resolve().as_uri())
        with file_store_allowed():
            _ = mlflow.experiment  # the client and its file store are made here, while MLflow allows it
        loggers.append(mlflow)
    return loggers


@contextmanager
def file_store_allowed() -> Iterator[None]:
    """``MLFLOW_ALLOW_FILE_STORE=true`` inside (unless the user set it), the environment as it was after."""
    before = os.environ.get(FILE_STORE_VARIABLE)
    os.environ.setdefault(FILE_STORE_VARIABLE, "true")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(FILE_STORE_VARIABLE, None)
