"""On-disk cache of log-mel spectrograms, one ``.npy`` per clip, keyed by their config.

Layout: ``CACHE_DIR/<key>/<clip_id>-<file id>.npy`` where ``key`` hashes the audio and
feature settings (and a variant tag for augmented copies) and ``file id`` hashes the
file's absolute path, size and modification time, so a changed config or a changed
file never reuses a stale entry. Writes are atomic; an unreadable or wrongly shaped
entry is deleted and rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from esclab.audio import AudioDecodeError, load_audio
from esclab.config import AudioConfig, FeatureConfig
from esclab.features.frontend import build_frontend
from esclab.progress import track

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
# Settings that change the cached values; cache_dir and standardize (applied later) do not.
_IGNORED_FEATURE_KEYS = ("cache_dir", "standardize")

WaveTransform = Callable[[np.ndarray, str], np.ndarray]


def cache_key(audio: AudioConfig, features: FeatureConfig, variant: str = "clean") -> str:
    """Short stable hash of everything that determines a cached spectrogram."""
    feats = {k: v for k, v in asdict(features).items() if k not in _IGNORED_FEATURE_KEYS}
    blob = json.dumps({"format": CACHE_FORMAT, "audio": asdict(audio), "features": feats, "variant": variant},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def file_id(path: str | Path) -> str:
    """Hash of a file's absolute path, size and mtime: changes when the file does."""
    st = os.stat(path)
    blob = f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


class FeatureCache:
    """Log-mel cache for one audio + feature config (and one augmentation ``variant``).

    Args:
        audio: decoding settings.
        features: log-mel settings; ``features.cache_dir`` is the cache's root folder.
        variant: tag for augmented copies (``"clean"`` for the plain features).
        wave_transform: applied to the decoded waveform before the log-mel (for banks of
            augmented variants); called as ``wave_transform(wave, clip_id)`` so it can seed per clip.
    """

    def __init__(self, audio: AudioConfig, features: FeatureConfig, variant: str = "clean",
                 wave_transform: WaveTransform | None = None):
        self.audio, self.features = audio, features
        self.key = cache_key(audio, features, variant)
        self.folder = Path(features.cache_dir).expanduser() / self.key
        self.wave_transform = wave_transform
        self.frontend = build_frontend(audio, features)
        self.computed = 0  # spectrograms computed (not read) by this instance
        self._shape: tuple[int, ...] | None = None

    def entry(self, path: str | Path, clip_id: str) -> Path:
        return self.folder / f"{clip_id}-{file_id(path)}.npy"

    def read(self, entry: Path) -> np.ndarray | None:
        """The cached array, or ``None`` when absent or corrupt (a corrupt entry is removed)."""
        if not entry.is_file():
            return None
        try:
            arr = np.load(entry, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            log.warning("corrupt cache entry %s (%s): rebuilding it", entry, err)
            entry.unlink(missing_ok=True)
            return None
        if arr.ndim != 2 or arr.shape[0] != self.features.n_mels or not np.all(np.isfinite(arr)) or (
                self._shape is not None and arr.shape != self._shape):
            log.warning("cache entry %s has shape %s or non-finite values: rebuilding it", entry, arr.shape)
            entry.unlink(missing_ok=True)
            return None
        return arr

    def compute(self, path: str | Path, clip_id: str = "") -> np.ndarray:
        """Decode ``path`` and return its ``(n_mels, frames)`` log-mel (no cache involved)."""
        wave = load_audio(path, self.audio.sample_rate, self.audio.duration, self.audio.band_rate)
        if self.wave_transform is not None:
            wave = self.wave_transform(wave, clip_id)
        with torch.no_grad():
            spec = self.frontend(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)))
        return spec[0, 0].numpy()

    def get(self, path: str | Path, clip_id: str) -> np.ndarray:
        """Cached log-mel of one clip, computed and stored on a miss."""
        entry = self.entry(path, clip_id)
        arr = self.read(entry)
        if arr is None:
            arr = self.compute(path, clip_id)
            self._write(entry, arr)
            self.computed += 1
        self._shape = arr.shape
        return arr

    def load(self, paths: Sequence[str], clip_ids: Sequence[str], progress: bool = True,
             desc: str = "features") -> tuple[np.ndarray, dict[str, str]]:
        """Log-mels of many clips ``(N_ok, n_mels, frames)`` and the unreadable ones (path -> reason).

        A clip that cannot be decoded is skipped with a warning naming it; the others go on.
        """
        out, bad = [], {}
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write_manifest()
        for path, clip_id in track(list(zip(paths, clip_ids, strict=True)), desc=desc, enabled=progress):
            try:
                out.append(self.get(path, clip_id))
            except AudioDecodeError as err:
                log.warning("skipping %s", err)
                bad[str(path)] = str(err)
        shape = (0, self.features.n_mels, self.features.frames or 0)
        return (np.stack(out) if out else np.zeros(shape, np.float32)), bad

    def _write(self, entry: Path, arr: np.ndarray) -> None:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, arr.astype(np.float32, copy=False), allow_pickle=False)
            os.replace(tmp, entry)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _write_manifest(self) -> None:
        manifest = self.folder / "config.json"
        if not manifest.exists():
            feats = {k: v for k, v in asdict(self.features).items() if k not in _IGNORED_FEATURE_KEYS}
            manifest.write_text(json.dumps({"audio": asdict(self.audio), "features": feats}, indent=2))
