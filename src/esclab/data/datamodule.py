"""Lightning data for one cross-validation fold, from cached log-mels held in memory.

The test fold is never seen by training: early stopping and the LR plateau watch a
validation split taken from the training folds by source recording (no recording on both
sides), stratified by class where the data allow; the optional per-band standardisation
statistics come from the training split only.

The training order and the bank variant of each draw are a function of (seed, epoch) alone
(:class:`EpochSampler`), so a fold resumed at epoch k sees the batches an uninterrupted one does.
"""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import numpy as np
import torch
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold
from torch.utils.data import DataLoader, Dataset, Sampler

from esclab.config import ConfigError
from esclab.features.frontend import band_statistics


class SpectrogramDataset(Dataset):
    """``(1, M, T)`` spectrogram and class index per clip (or a ``(C, H, W)`` map of frozen layers as it is).

    Args:
        specs: ``(N, M, T)`` clean log-mels, or ``(N, C, H, W)`` outputs of a model's frozen layers.
        targets: ``(N,)`` class indices.
        bank: optional ``(K, N, M, T)`` augmented variants (training only): an item ``(i, k)``
            gives clip ``i``'s variant ``k`` (0: the clean clip, 1..K: the bank), a plain ``i`` the clean clip.
    """

    def __init__(self, specs: torch.Tensor, targets: torch.Tensor, bank: torch.Tensor | None = None):
        self.specs, self.targets, self.bank = specs, targets, bank

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        i, k = item if isinstance(item, tuple) else (item, 0)
        spec = self.bank[k - 1, i] if k > 0 and self.bank is not None else self.specs[i]
        return (spec.unsqueeze(0) if spec.ndim == 2 else spec), self.targets[i]


class EpochSampler(Sampler):
    """Shuffled ``(index, variant)`` pairs drawn from ``(seed, epoch)`` alone.

    Lightning calls :meth:`set_epoch` before every epoch (as for a ``DistributedSampler``); the draw
    happens when iteration starts, so a run resumed at epoch k gets exactly epoch k's order and
    variants. ``variants`` is the bank size K: each clip is drawn clean or as one of its K variants,
    uniformly.
    """

    def __init__(self, n: int, seed: int, variants: int = 0, epoch: int = 0):
        self.n, self.seed, self.variants, self.epoch = n, seed, variants, epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.n)
        variant = rng.integers(0, self.variants + 1, self.n)
        return iter(zip(order.tolist(), variant.tolist(), strict=True))


class FoldDataModule(L.LightningDataModule):
    """Train / validation / test loaders for one test fold.

    Args:
        specs: ``(N, M, T)`` log-mels of every clip, in table order (or ``(N, C, H, W)`` outputs of the
            model's frozen layers, :mod:`esclab.train.frozen`).
        targets: ``(N,)`` class indices.
        folds: ``(N,)`` fold numbers.
        test_fold: the held-out fold.
        batch_size: training batch size (evaluation uses twice that).
        val_fraction: share of the training folds held out for validation (grouped, see
            :func:`split_validation`).
        seed: seeds the validation split and the training order.
        standardize: compute per-band mean/std on the training split (see ``norm_stats``).
        bank: optional ``(K, N, M, T)`` augmented variants for training clips.
        num_workers: DataLoader workers.
        progressive: curriculum stages ``[{fraction, epochs}, ...]``: the first ``epochs`` train on
            ``fraction`` of the training split, and so on; the full split after the last stage. The
            trainer must reload the training loader every epoch.
        groups: ``(N,)`` source recording of each clip (``None``: every clip its own).
    """

    def __init__(self, specs: np.ndarray | torch.Tensor, targets: np.ndarray, folds: np.ndarray, test_fold: int,
                 batch_size: int = 32, val_fraction: float = 0.1, seed: int = 42, standardize: bool = False,
                 bank: np.ndarray | torch.Tensor | None = None, num_workers: int = 0,
                 progressive: list[dict] | None = None, groups: np.ndarray | None = None):
        super().__init__()
        if test_fold not in set(int(k) for k in folds):
            raise ValueError(f"test fold {test_fold} not in the data (folds: {sorted(set(int(k) for k in folds))})")
        self.specs = torch.as_tensor(specs, dtype=torch.float32)
        self.bank = None if bank is None else torch.as_tensor(bank, dtype=torch.float32)
        self.targets = torch.as_tensor(np.array(targets), dtype=torch.long)
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        folds = np.asarray(folds)
        self.test_idx = np.flatnonzero(folds == test_fold)
        groups = np.arange(len(folds)) if groups is None else np.asarray(groups)
        self.train_idx, self.val_idx = split_validation(np.flatnonzero(folds != test_fold), np.asarray(targets),
                                                        groups, val_fraction, seed)
        self.progressive = list(progressive or [])
        self.norm_stats = band_statistics(self.specs[self.train_idx]) if standardize else None

    def _subset(self, idx: np.ndarray, bank: bool = False) -> SpectrogramDataset:
        index = torch.as_tensor(idx, dtype=torch.long)
        variants = self.bank[:, index] if bank and self.bank is not None else None
        return SpectrogramDataset(self.specs[index], self.targets[index], variants)

    def train_indices(self, fraction: float = 1.0) -> np.ndarray:
        """A stratified ``fraction`` of the training clips; smaller fractions are subsets of larger ones."""
        if fraction >= 1.0:
            return self.train_idx
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(self.train_idx))
        targets = self.targets.numpy()[self.train_idx[order]]
        keep = []
        for cls in np.unique(targets):
            members = order[targets == cls]
            keep.extend(members[: max(1, int(round(len(members) * fraction)))])
        return self.train_idx[np.sort(np.asarray(keep))]

    def train_dataloader(self) -> DataLoader:
        epoch = int(self.trainer.current_epoch) if self.trainer else 0
        fraction = stage_fraction(self.progressive, epoch)
        data = self._subset(self.train_indices(fraction), bank=True)
        variants = 0 if data.bank is None else int(data.bank.shape[0])
        # Its own generator: the loader's worker seed never draws from (and shifts) the global RNG.
        return DataLoader(data, batch_size=self.batch_size, sampler=EpochSampler(len(data), self.seed, variants, epoch),
                          generator=torch.Generator().manual_seed(self.seed + epoch), num_workers=self.num_workers,
                          drop_last=False)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self._subset(self.val_idx), batch_size=self.batch_size * 2, num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self._subset(self.test_idx), batch_size=self.batch_size * 2, num_workers=self.num_workers)


def split_validation(train_idx: np.ndarray, targets: np.ndarray, groups: np.ndarray, fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``train_idx`` into (train, validation) by group; ``fraction=0`` gives no validation.

    No group (source recording) appears on both sides. Stratified by class with scikit-learn's
    ``StratifiedGroupKFold`` (one fold of ``round(1 / fraction)``: the validation share is close to
    ``fraction``) when every class has that many groups; otherwise ``GroupShuffleSplit`` (grouped only).

    Raises:
        ConfigError: fewer than two groups to split (``data.val_fraction`` must be 0).
    """
    if fraction <= 0:
        return train_idx, train_idx[:0]
    labels, group_ids = targets[train_idx], groups[train_idx]
    n_splits = max(2, round(1 / fraction))
    groups_per_class = [len(np.unique(group_ids[labels == c])) for c in np.unique(labels)]
    if len(np.unique(group_ids)) < 2:
        raise ConfigError(f"a validation split needs at least 2 source groups, the training folds have "
                         f"{len(np.unique(group_ids))}; set data.val_fraction=0")
    if min(groups_per_class) >= n_splits:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    else:
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    train, val = next(splitter.split(train_idx, labels, group_ids))
    return np.sort(train_idx[train]), np.sort(train_idx[val])


def stage_fraction(stages: list[dict], epoch: int) -> float:
    """Training fraction for ``epoch`` under ``[{fraction, epochs}, ...]``; 1.0 after the last stage."""
    end = 0
    for stage in stages:
        end += int(stage["epochs"])
        if epoch < end:
            return float(stage["fraction"])
    return 1.0
