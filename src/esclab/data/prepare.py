"""Everything a run trains on, prepared once: the clip table, cached log-mels, the augmentation bank."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from esclab.config import AudioConfig, ConfigError, ExperimentConfig
from esclab.data import load_dataset
from esclab.data.bank import load_bank
from esclab.data.esc50 import NUM_CLIPS, NUM_CLIPS_ESC10, require_complete
from esclab.data.table import ClipTable
from esclab.features.cache import FeatureCache

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    """The clips of a run, their spectrograms (and bank variants or probe embeddings), and their audio rate.

    Attributes:
        table: the usable clips (unreadable ones are in ``table.skipped``).
        specs: ``(N, n_mels, frames)`` log-mels in table order.
        bank: ``(K, N, n_mels, frames)`` augmented variants, or ``None``.
        data_rate: the lowest rate the clips are stored at; bundles record it as ``audio.band_rate``
            when it is below the model's rate, so prediction sees the band training saw.
        rates: each clip's stored rate, by path.
        embeddings: ``(N, D)`` frozen-network embeddings, one per candidate embedding, set by a linear-probe run.
        frozen: ``(N, ...)`` outputs of the model's frozen leading layers, set by a run whose model has
            them (:mod:`esclab.train.frozen`); ``frozen_bank`` ``(K, N, ...)`` the same for the bank.
    """

    table: ClipTable
    specs: np.ndarray
    bank: np.ndarray | None
    data_rate: int | None = None
    rates: dict[str, int] | None = None  # clip path -> the rate it is stored at
    embeddings: list[np.ndarray] | None = None
    frozen: np.ndarray | None = None
    frozen_bank: np.ndarray | None = None

    def training_inputs(self) -> tuple[np.ndarray, np.ndarray | None]:
        """What the trainable part of the model reads, and its bank: the frozen layers' outputs when the
        model has frozen layers, else the log-mels."""
        if self.frozen is not None:
            return self.frozen, self.frozen_bank
        return self.specs, self.bank

    def bundle_audio(self, audio: AudioConfig) -> AudioConfig:
        """``audio`` with ``band_rate`` set to the data's rate when the data hold less band than the model reads."""
        if audio.band_rate is None and self.data_rate is not None and self.data_rate < audio.sample_rate:
            return replace(audio, band_rate=self.data_rate)
        return audio


def require_folds(table: ClipTable, key: str, folds: list[int], hint: str = "") -> None:
    """Stop when ``folds`` (the config's ``key``) names a fold ``table`` does not have.

    Raises:
        ConfigError: naming the absent folds and the dataset's own.
    """
    absent = sorted(set(folds) - set(table.folds()))
    if absent:
        raise ConfigError(f"{key} {absent} are not in the dataset (its folds: {table.folds()}){hint}")


def leave_out_folds(table: ClipTable, folds: list[int]) -> ClipTable:
    """``table`` without the clips of ``folds`` (``data.exclude_folds``), logged; a fold it lacks is an error.

    Raises:
        ConfigError: a fold in ``folds`` that the dataset does not have (a typo would leave out nothing).
    """
    require_folds(table, "data.exclude_folds", folds)
    kept = table.without_folds(folds)
    log.info("data.exclude_folds %s: %d clips left out of this run, %d kept (folds %s)", sorted(folds),
             len(table) - len(kept), len(kept), kept.folds())
    return kept


def prepare_data(cfg: ExperimentConfig, progress: bool = True, check_folds: bool = True) -> PreparedData:
    """Load the clip table, its cached log-mels and bank; unreadable clips move to ``table.skipped``.

    With ``check_folds``, every fold in ``cfg.data.folds`` must exist in the dataset.

    The clips of ``cfg.data.exclude_folds`` are dropped first: no audio of theirs is read, and the
    completeness check counts only the folds the run uses.

    Raises:
        ConfigError: a fold in ``cfg.data.folds`` or ``cfg.data.exclude_folds`` that the dataset does not have.
        IncompleteDatasetError: ESC-50 clips missing or unreadable without ``data.allow_missing``.
    """
    table = load_dataset(cfg.data, seed=cfg.train.seed)
    if check_folds:
        require_folds(table, "data.folds", cfg.data.folds, "; choose with --folds")
    official = cfg.data.dataset in ("esc50", "esc10")
    expected = NUM_CLIPS_ESC10 if cfg.data.dataset == "esc10" else NUM_CLIPS
    if cfg.data.exclude_folds:  # a left-out fold is not part of the run, its clips missing or not
        listed = len(table) + len(table.skipped)
        table = leave_out_folds(table, cfg.data.exclude_folds)
        expected -= listed - (len(table) + len(table.skipped))
    if official:  # before any work: a copy missing files is not ESC-50
        require_complete(table, cfg.data.allow_missing, expected)
    cache = FeatureCache(cfg.audio, cfg.features)
    specs, bad = cache.load(table.clips["path"].tolist(), table.clips["clip_id"].tolist(), progress=progress)
    table = table.without(bad)
    if official and bad:  # files that are there but do not decode
        require_complete(table, cfg.data.allow_missing, expected)
    rates = cache.native_rates(table.clips["path"].tolist(), table.clips["clip_id"].tolist())
    bank = load_bank(cfg, table, progress=progress)
    data_rate = min(rates.values(), default=None)
    return PreparedData(table, specs, bank, data_rate, rates)
