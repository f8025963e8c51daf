"""Datasets: ESC-50/ESC-10 by the official folds, or any folder of audio plus a CSV."""

from esclab.data.esc50 import DatasetNotFoundError, load_esc50
from esclab.data.folder import load_folder
from esclab.data.table import ClipTable

__all__ = ["ClipTable", "DatasetNotFoundError", "load_dataset", "load_esc50", "load_folder"]


def load_dataset(data_cfg, seed: int = 0) -> ClipTable:
    """The clip table named by a :class:`esclab.config.DataConfig`."""
    if data_cfg.dataset == "folder":
        return load_folder(data_cfg.csv, data_cfg.root, num_folds=max([*data_cfg.folds, *data_cfg.exclude_folds]),
                           seed=seed)
    return load_esc50(data_cfg.root, esc10=data_cfg.dataset == "esc10", download=data_cfg.download)
