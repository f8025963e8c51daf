"""Where a fold's training curves go (``train.logger``): Lightning's loggers, all under ``fold_K/logs``.

- ``csv`` (default): ``fold_K/logs/metrics.csv``. It is written whatever the choice: the report reads it.
- ``tensorboard``: event files beside it; ``tensorboard --logdir RUN`` shows every fold, live.
- ``mlflow`` (when MLflow is installed): a file store in ``fold_K/logs/mlruns``, one MLflow run per fold.
  MLflow 3 keeps its file store in maintenance mode behind ``MLFLOW_ALLOW_FILE_STORE=true``; esclab sets
  it when unset, so a run's curves stay files in the run folder (no database server):
  ``MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri RUN/fold_K/logs/mlruns``.
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger

from esclab.config import ConfigError
from esclab.runs import FoldDir

_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "mlflow": ("mlflow",)}


def check_logger(kind: str) -> None:
    """Raise :class:`ConfigError` when ``train.logger`` names a logger whose package is not installed."""
    packages = _PACKAGES.get(kind, ())
    if packages and not any(find_spec(p) for p in packages):
        raise ConfigError(f"train.logger={kind} needs the {packages[0]} package, which is not installed: "
                          f"pip install {packages[0]} (or choose train.logger=csv)")


def build_loggers(kind: str, fold_dir: Path, experiment: str) -> list[Logger]:
    """The CSV logger, plus the ``kind`` logger when it is not ``csv``; every file under ``fold_dir/logs``.

    Args:
        kind: ``csv``, ``tensorboard`` or ``mlflow`` (``train.logger``, checked by the config).
        fold_dir: the fold's folder, ``RUN/fold_K``.
        experiment: the MLflow experiment name (the config's ``name``); each fold is a run in it.

    Raises:
        ConfigError: the ``kind`` logger's package is not installed.
    """
    check_logger(kind)
    logs = FoldDir(fold_dir).logs
    loggers: list[Logger] = [CSVLogger(fold_dir, name=logs.name, version="")]  # first: trainer.log_dir is its
    if kind == "tensorboard":
        loggers.append(TensorBoardLogger(fold_dir, name=logs.name, version="", default_hp_metric=False))
    elif kind == "mlflow":
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        _ = loggers[0].experiment  # the CSV log first: it warns about a folder MLflow has already filled
        loggers.append(MLFlowLogger(experiment_name=experiment, run_name=fold_dir.name,
                                    tracking_uri=(logs / "mlruns").resolve().as_uri()))
    return loggers
