"""Lightning data for one cross-validation fold, from cached log-mels held in memory.

The test fold is never seen by training: early stopping and the LR plateau watch a
stratified validation split taken from the training folds, and the optional per-band
standardisation statistics come from the training split only.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset

from esclab.features.frontend import band_statistics


class SpectrogramDataset(Dataset):
    """``(1, M, T)`` spectrogram and class index per clip.

    Args:
        specs: ``(N, M, T)`` clean log-mels.
        targets: ``(N,)`` class indices.
        bank: optional ``(K, N, M, T)`` augmented variants; each draw picks the clean
            clip or one of its K variants uniformly (training only).
    """

    def __init__(self, specs: torch.Tensor, targets: torch.Tensor, bank: torch.Tensor | None = None):
        self.specs, self.targets, self.bank = specs, targets, bank

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        spec = self.specs[i]
        if self.bank is not None:
            k = int(torch.randint(self.bank.shape[0] + 1, ()).item())
            if k > 0:
                spec = self.bank[k - 1, i]
        return spec.unsqueeze(0), self.targets[i]


class FoldDataModule(L.LightningDataModule):
    """Train / validation / test loaders for one test fold.

    Args:
        specs: ``(N, M, T)`` log-mels of every clip, in table order.
        targets: ``(N,)`` class indices.
        folds: ``(N,)`` fold numbers.
        test_fold: the held-out fold.
        batch_size: training batch size (evaluation uses twice that).
        val_fraction: share of the training folds held out for validation (stratified).
        seed: seeds the validation split.
        standardize: compute per-band mean/std on the training split (see ``norm_stats``).
        bank: optional ``(K, N, M, T)`` augmented variants for training clips.
        num_workers: DataLoader workers.
        progressive: curriculum stages ``[{fraction, epochs}, ...]``: the first ``epochs`` train on
            ``fraction`` of the training split, and so on; the full split after the last stage. The
            trainer must reload the training loader every epoch.
    """

    def __init__(self, specs: np.ndarray | torch.Tensor, targets: np.ndarray, folds: np.ndarray, test_fold: int,
                 batch_size: int = 32, val_fraction: float = 0.1, seed: int = 42, standardize: bool = False,
                 bank: np.ndarray | torch.Tensor | None = None, num_workers: int = 0,
                 progressive: list[dict] | None = None):
        super().__init__()
        if test_fold not in set(int(k) for k in folds):
            raise ValueError(f"test fold {test_fold} not in the data (folds: {sorted(set(int(k) for k in folds))})")
        self.specs = torch.as_tensor(specs, dtype=torch.float32)
        self.bank = None if bank is None else torch.as_tensor(bank, dtype=torch.float32)
        self.targets = torch.as_tensor(np.array(targets), dtype=torch.long)
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        folds = np.asarray(folds)
        self.test_idx = np.flatnonzero(folds == test_fold)
        self.train_idx, self.val_idx = split_validation(np.flatnonzero(folds != test_fold),
                                                        np.asarray(targets), val_fraction, seed)
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
        generator = torch.Generator().manual_seed(self.seed + epoch)
        fraction = stage_fraction(self.progressive, epoch)
        return DataLoader(self._subset(self.train_indices(fraction), bank=True), batch_size=self.batch_size, shuffle=True,
                          generator=generator, num_workers=self.num_workers, drop_last=False)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self._subset(self.val_idx), batch_size=self.batch_size * 2, num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self._subset(self.test_idx), batch_size=self.batch_size * 2, num_workers=self.num_workers)


def split_validation(train_idx: np.ndarray, targets: np.ndarray, fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of ``train_idx`` into (train, validation); ``fraction=0`` gives no validation."""
    if fraction <= 0:
        return train_idx, train_idx[:0]
    labels = targets[train_idx]
    n_classes = len(np.unique(labels))
    n_val = max(int(round(len(train_idx) * fraction)), 1)
    counts = np.bincount(labels)
    can_stratify = counts[counts > 0].min() >= 2 and n_classes <= n_val <= len(train_idx) - n_classes
    stratify = labels if can_stratify else None
    train, val = train_test_split(train_idx, test_size=n_val, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(val)


def stage_fraction(stages: list[dict], epoch: int) -> float:
    """Training fraction for ``epoch`` under ``[{fraction, epochs}, ...]``; 1.0 after the last stage."""
    end = 0
    for stage in stages:
        end += int(stage["epochs"])
        if epoch < end:
            return float(stage["fraction"])
    return 1.0
