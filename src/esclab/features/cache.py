"""On-disk cache of log-mel spectrograms, one ``.npy`` per clip, keyed by their config.

Layout: ``CACHE_DIR/<key>/<clip_id>-<file id>.npy`` where ``key`` hashes the audio and
feature settings (and a variant tag for augmented copies) and ``file id`` hashes the
file's absolute path, size and modification time, so a changed config or a changed
file never reuses a stale entry. Writes are atomic; an unreadable or wrongly shaped
entry is deleted and rebuilt, never trusted. ``rates.json`` beside the entries records the
rate each clip's file is stored at (learnt while decoding it), so a warm run reads no headers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from multiprocessing.context import BaseContext
from pathlib import Path

import numpy as np
import torch

from esclab.audio import AudioDecodeError, conform, native_rate, read_audio
from esclab.config import AudioConfig, FeatureConfig
from esclab.features.frontend import build_frontend
from esclab.fsutil import atomic_write
from esclab.progress import Progress
from esclab.provenance import source_fingerprint

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
# Settings that change the cached values; cache_dir and standardize (applied later) do not.
_IGNORED_FEATURE_KEYS = ("cache_dir", "standardize")

WaveTransform = Callable[[np.ndarray, str], np.ndarray]
Computed = tuple[np.ndarray, int]  # a log-mel and the rate its file is stored at
Result = Computed | str  # or why the clip could not be decoded
Job = tuple[str, str, str]  # (path, clip_id, cache entry to write)
RATES_FILE = "rates.json"  # entry name -> the stored rate of its file, so a cache hit needs no header read
# Cache misses per worker process below which starting processes costs more than it saves.
MIN_CLIPS_PER_WORKER = 16
CHUNK = 16  # clips per task sent to a worker: few round trips, and progress still moves


#: The code that decodes and computes the log-mels: part of every key, so a change to it rebuilds the cache.
FRONTEND_CODE = source_fingerprint("esclab.audio", "esclab.features.functional", "esclab.features.frontend")


def cache_key(audio: AudioConfig, features: FeatureConfig, variant: str = "clean") -> str:
    """Short stable hash of everything that determines a cached spectrogram."""
    feats = {k: v for k, v in asdict(features).items() if k not in _IGNORED_FEATURE_KEYS}
    blob = json.dumps({"format": CACHE_FORMAT, "audio": asdict(audio), "features": feats, "variant": variant,
                       "code": FRONTEND_CODE}, sort_keys=True)
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
        self.rates: dict[str, int] = {}  # path -> stored rate, of the clips :meth:`load` knows it for
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

    def load(self, paths: Sequence[str], clip_ids: Sequence[str], progress: bool = True,
             desc: str = "features", workers: int | None = None) -> tuple[np.ndarray, dict[str, str]]:
        """Log-mels of many clips ``(N_ok, n_mels, frames)`` and the unreadable ones (path -> reason).

        Cached entries are read; the misses are computed and written in ``workers`` processes (default:
        one per CPU when there are at least :data:`MIN_CLIPS_PER_WORKER` misses per process).
        A clip that cannot be decoded is skipped with a warning naming it; the others go on.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write_manifest()
        pairs = [(str(p), c) for p, c in zip(paths, clip_ids, strict=True)]
        specs: list[np.ndarray | None] = [None] * len(pairs)
        bad: dict[str, str] = {}
        recorded, learnt = self._read_rates(), {}
        with Progress(len(pairs), desc, progress) as bar:
            misses = []
            for i, (path, clip_id) in enumerate(pairs):
                entry = self.entry(path, clip_id)
                specs[i] = self.read(entry)
                if specs[i] is None:
                    misses.append((i, entry))
                else:
                    self._shape = specs[i].shape
                    if entry.name in recorded:
                        self.rates[path] = int(recorded[entry.name])
                    bar.update()
            jobs = [(*pairs[i], str(entry)) for i, entry in misses]
            for i, result in self._compute_many(jobs, workers):
                index, entry = misses[i]
                if isinstance(result, str):
                    log.warning("skipping %s", result)
                    path = pairs[index][0]
                    bad[path] = result.removeprefix(f"{path}: ")
                else:
                    self.computed += 1
                    specs[index], learnt[entry.name] = result
                    self.rates[pairs[index][0]] = result[1]
                bar.update()
        if learnt:  # merged with what was read above; a concurrent writer can only cost header reads
            atomic_write(self.folder / RATES_FILE, json.dumps({**recorded, **learnt}, sort_keys=True))
        out = [s for s in specs if s is not None]
        shape = (0, self.features.n_mels, self.features.frames or 0)
        return (np.stack(out) if out else np.zeros(shape, np.float32)), bad

    def native_rates(self, paths: Sequence[str], clip_ids: Sequence[str]) -> dict[str, int]:
        """The rate each file is stored at (path -> Hz): as :meth:`load` learnt it (decoded, or recorded in
        ``rates.json``), else from ``rates.json``, else from the file's header.

        Raises:
            AudioDecodeError: a file whose rate is not recorded and whose header cannot be read.
        """
        out, recorded = {}, None
        for path, clip_id in zip(map(str, paths), clip_ids, strict=True):
            if path not in self.rates:
                recorded = self._read_rates() if recorded is None else recorded
                rate = recorded.get(self.entry(path, clip_id).name)
                self.rates[path] = int(rate) if rate else native_rate(path)
            out[path] = self.rates[path]
        return out

    def _read_rates(self) -> dict[str, int]:
        try:
            rates = json.loads((self.folder / RATES_FILE).read_text())
        except (OSError, ValueError):  # absent (a cache from before rates.json) or damaged: headers instead
            return {}
        return rates if isinstance(rates, dict) else {}

    def _compute_many(self, items: list[Job], workers: int | None) -> Iterator[tuple[int, Result]]:
        """Compute and write each job's entry: ``(index into items, log-mel and rate, or why it failed)``, in any order."""
        workers = _worker_count(len(items)) if workers is None else min(workers, len(items))
        context = _process_context(self.wave_transform) if workers > 1 else None
        if context is None:
            for i, item in enumerate(items):
                yield i, _fill(self.frontend, self.audio, self.wave_transform, [item])[0]
            return
        size = max(1, min(CHUNK, len(items) // (4 * workers)))
        chunks = [list(range(start, min(start + size, len(items)))) for start in range(0, len(items), size)]
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                 initargs=(self.audio, self.features, self.wave_transform)) as pool:
            futures = {pool.submit(_worker_chunk, [items[i] for i in chunk]): chunk for chunk in chunks}
            for future in as_completed(futures):
                yield from zip(futures[future], future.result(), strict=True)

    def _write_manifest(self) -> None:
        manifest = self.folder / "config.json"
        if not manifest.exists():
            feats = {k: v for k, v in asdict(self.features).items() if k not in _IGNORED_FEATURE_KEYS}
            atomic_write(manifest, json.dumps({"audio": asdict(self.audio), "features": feats}, indent=2))


def write_entry(entry: str | Path, arr: np.ndarray) -> None:
    """Write ``arr`` as a float32 ``.npy`` cache entry, atomically."""
    atomic_write(entry, lambda fh: np.save(fh, arr.astype(np.float32, copy=False), allow_pickle=False))


def _log_mel(frontend: torch.nn.Module, audio: AudioConfig, wave_transform: WaveTransform | None, path: str,
             clip_id: str) -> Computed:
    """Decode ``path``, apply ``wave_transform``: its ``(n_mels, frames)`` log-mel and the rate its file is stored at."""
    wave, rate = read_audio(path)
    wave = conform(wave, rate, audio.sample_rate, audio.duration, audio.band_rate)
    if wave_transform is not None:
        wave = wave_transform(wave, clip_id)
    with torch.no_grad():
        spec = frontend(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)))[0, 0].numpy()
    return spec, rate


def _fill(frontend: torch.nn.Module, audio: AudioConfig, wave_transform: WaveTransform | None,
          jobs: Sequence[Job]) -> list[Result]:
    """Compute each ``(path, clip_id, entry)`` and write its entry; a clip that fails to decode gives the reason."""
    out: list[Result] = []
    for path, clip_id, entry in jobs:
        try:
            computed = _log_mel(frontend, audio, wave_transform, path, clip_id)
        except AudioDecodeError as err:
            out.append(str(err))
            continue
        write_entry(entry, computed[0])
        out.append(computed)
    return out


def _worker_count(misses: int) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, misses // MIN_CLIPS_PER_WORKER))


def _process_context(wave_transform: WaveTransform | None) -> BaseContext | None:
    """Fork where the platform has it (no re-import, any ``wave_transform``); else spawn when the transform
    pickles; else ``None`` (compute in this process)."""
    if "fork" in mp.get_all_start_methods():
        return mp.get_context("fork")
    try:
        pickle.dumps(wave_transform)
    except Exception:  # closures and lambdas: computed here instead
        return None
    return mp.get_context("spawn")


_WORKER: dict[str, object] = {}


def _init_worker(audio: AudioConfig, features: FeatureConfig, wave_transform: WaveTransform | None) -> None:
    """One thread per worker process (the processes are the parallelism) and its own front end."""
    torch.set_num_threads(1)
    _WORKER.update(frontend=build_frontend(audio, features), audio=audio, wave_transform=wave_transform)


def _worker_chunk(jobs: list[Job]) -> list[Result]:
    return _fill(_WORKER["frontend"], _WORKER["audio"], _WORKER["wave_transform"], jobs)  # type: ignore[arg-type]
