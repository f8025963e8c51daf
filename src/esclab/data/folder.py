"""Any folder of audio plus a CSV: ``path,label`` and optionally ``fold`` or ``group``.

A relative CSV is looked up in the data folder first, then in the current directory; a relative
``path`` is relative to the data folder (or, without one, the CSV's folder). Without ``fold``, folds
are made by stratified splitting; with ``group`` (e.g. a recording id), clips of one group stay in
one fold so that near-duplicates never straddle train and test.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from esclab.data.esc50 import DatasetError, DatasetNotFoundError
from esclab.data.table import ClipTable, resolve_rows


def load_folder(csv: str | Path, root: str | Path | None = None, num_folds: int = 5, seed: int = 0) -> ClipTable:
    """Read a ``path,label[,fold][,group]`` CSV into a :class:`ClipTable`.

    Args:
        csv: the CSV file; relative: in ``root`` first, then in the current directory.
        root: the data folder, which relative paths inside the CSV are relative to (default: the CSV's folder).
        num_folds: folds to create when the CSV has no ``fold`` column.
        seed: shuffling seed for created folds.

    Raises:
        DatasetNotFoundError: no such CSV; the message names every place looked in.
        DatasetError: a CSV without the ``path`` and ``label`` columns.
    """
    csv = find_csv(csv, root)
    rows = pd.read_csv(csv)
    missing = {"path", "label"} - set(rows.columns)
    if missing:
        raise DatasetError(f"{csv}: needs columns path,label (optional fold, group); missing {sorted(missing)}")
    rows = rows.rename(columns={"path": "filename"})
    if "fold" not in rows.columns:
        rows["fold"] = make_folds(rows["label"].astype(str).to_numpy(),
                                  rows["group"].to_numpy() if "group" in rows.columns else None, num_folds, seed)
    names = sorted(rows["label"].astype(str).unique())
    return dataclasses.replace(resolve_rows(rows, Path(root) if root else csv.parent, names), metadata=csv.resolve())


def find_csv(csv: str | Path, root: str | Path | None = None) -> Path:
    """The CSV file: an absolute path as is; a relative one in ``root``, else in the current directory.

    Example:
        >>> find_csv("labels.csv", "/no/such/folder")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        esclab.data.esc50.DatasetNotFoundError: CSV not found: labels.csv (looked in /no/such/folder/labels.csv and ...)
    """
    csv = Path(csv)
    places = [csv] if csv.is_absolute() or root is None else [Path(root) / csv, csv]
    for place in places:
        if place.is_file():
            return place
    looked = " and ".join(str(p.absolute()) for p in places)
    raise DatasetNotFoundError(f"CSV not found: {csv} (looked in {looked})")


def make_folds(labels: np.ndarray, groups: np.ndarray | None, num_folds: int, seed: int) -> np.ndarray:
    """Stratified (and grouped, when ``groups`` is given) fold numbers 1..num_folds."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold  # seconds to import: only here

    smallest = pd.Series(labels).value_counts().min()
    k = max(2, min(num_folds, int(smallest)))
    folds = np.zeros(len(labels), dtype=int)
    if groups is None:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        splits = splitter.split(labels, labels)
    else:
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        splits = splitter.split(labels, labels, groups)
    for fold, (_, test) in enumerate(splits, start=1):
        folds[test] = fold
    return folds
