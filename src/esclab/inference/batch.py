"""Predict many files and folders, one result per file, never stopping at a bad one."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np

from esclab.audio import AUDIO_EXTENSIONS, AudioDecodeError, pad_or_trim
from esclab.inference.predictor import Predictor, batches
from esclab.inference.results import Prediction

T = TypeVar("T")
R = TypeVar("R")
#: Clips per forward pass over a folder. On 2 EPYC cores the paper CNN took 8.6 ms of CPU per clip
#: in batches of 8 and 16-20 ms in batches of 16 or 32, whose activations no longer fit the caches
#: (benchmarks/RESULTS.md, issue 18).
CHUNK_SIZE = 8


def collect_audio_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders (recursively) into their audio files; a path that is not a folder is kept as is.

    Folders contribute files with a supported extension (case-insensitive), sorted; a file
    named directly is always kept, so a bad or missing one still gets its error row.
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        else:
            files.append(path)
    return files


def _plot_name(path: Path, taken: set[str]) -> str:
    name, i = f"{path.stem}.png", 1
    while name in taken:
        i += 1
        name = f"{path.stem}_{i}.png"
    taken.add(name)
    return name


def _decode_clip(predictor: Predictor, path: Path) -> tuple[np.ndarray, int] | AudioDecodeError:
    """One file as a clip-length waveform and its full length in samples, or why it failed."""
    try:
        wave = predictor.load(path)
    except AudioDecodeError as err:
        return err
    return pad_or_trim(wave, predictor.clip_samples), len(wave)


def _prefetch(pool: Executor, fn: Callable[[T], R], items: Iterable[T], ahead: int) -> Iterator[R]:
    """``map(fn, items)`` on ``pool``, in order, with at most ``ahead`` calls running or done and unread."""
    pending: deque[Future[R]] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _predict_chunk(predictor: Predictor, files: list[Path], top_k: int) -> list[Prediction]:
    """Decode a few files and classify the good ones in one forward pass; error records for the others."""
    decoded = [_decode_clip(predictor, path) for path in files]
    good = [clip for clip in decoded if not isinstance(clip, AudioDecodeError)]
    rows = iter(predictor.probabilities(wave for wave, _ in good))
    return [Prediction.failed(path, clip) if isinstance(clip, AudioDecodeError)
            else predictor.clip_prediction(next(rows), clip[1], top_k, str(path))
            for path, clip in zip(files, decoded, strict=True)]


def predict_clips(predictor: Predictor, files: Sequence[Path], top_k: int = 3,
                  workers: int | None = None, batch_size: int = CHUNK_SIZE) -> Iterator[Prediction]:
    """One clip per file, in order: ``workers`` threads each decode ``batch_size`` files and classify them.

    Each thread does the whole job for its chunk (libsndfile, soxr and torch all work outside
    the GIL), so the cores stay busy without a hand-off between a decoding stage and a model
    stage. At most two chunks per thread are in flight, so memory stays bounded however many
    files there are, and each waveform is cut to the clip length as soon as it is decoded. A
    file that does not decode gives its error record.

    Args:
        predictor: the model to use.
        files: audio files.
        top_k: classes per result.
        workers: threads (default: the number of CPUs, at most 8).
        batch_size: files per chunk, i.e. clips per forward pass.
    """
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers, thread_name_prefix="esclab-predict") as pool:
        chunks = _prefetch(pool, partial(_predict_chunk, predictor, top_k=top_k), batches(files, batch_size),
                           2 * workers)
        for chunk in chunks:
            yield from chunk


def predict_paths(predictor: Predictor, paths: Iterable[str | Path], top_k: int = 3, long: bool = False,
                  window_s: float | None = None, hop_s: float | None = None,
                  plot_dir: str | Path | None = None, workers: int | None = None,
                  progress: Callable[[Prediction], None] | None = None) -> list[Prediction]:
    """Classify every audio file under ``paths``; undecodable files give error records.

    Args:
        predictor: the model to use.
        paths: files and folders.
        top_k: classes per result.
        long: sliding windows over each whole file (:meth:`Predictor.predict_long_wave`), one
            file at a time, instead of one clip per file (:func:`predict_clips`: parallel
            decoding, batched model).
        window_s: window length for ``long`` (default: the model's clip length).
        hop_s: hop for ``long`` (default: half the window).
        plot_dir: with ``long``, write a timeline PNG per file here (``STEM.png``); unused otherwise.
        workers: decoding threads for one clip per file (see :func:`predict_clips`).
        progress: called with each result as it is made (the CLI counts them with :class:`esclab.progress.Progress`).

    Returns:
        One :class:`Prediction` per file, in order; ``error`` set for the files that failed.

    Raises:
        WindowError: with ``long``, window settings that cannot work (checked before any file).
    """
    if long:
        predictor.window_samples(window_s, hop_s)
    files = collect_audio_files(paths)
    made = (_predict_long(predictor, files, top_k, window_s, hop_s, plot_dir) if long
            else predict_clips(predictor, files, top_k, workers))
    results = []
    for result in made:
        results.append(result)
        if progress is not None:
            progress(result)
    return results


def _predict_long(predictor: Predictor, files: list[Path], top_k: int, window_s: float | None,
                  hop_s: float | None, plot_dir: str | Path | None) -> Iterator[Prediction]:
    taken: set[str] = set()
    if plot_dir is not None:
        Path(plot_dir).mkdir(parents=True, exist_ok=True)
        # matplotlib costs most of a second to import: only a run that draws timelines pays for it.
        from esclab.evaluate.plots import save
        from esclab.inference.timeline import timeline_figure
    for path in files:
        try:
            wave = predictor.load(path)
        except AudioDecodeError as err:
            yield Prediction.failed(path, err)
            continue
        result = predictor.predict_long_wave(wave, predictor.sample_rate, window_s, hop_s, top_k, str(path))
        if plot_dir is not None:
            fig = timeline_figure(predictor.spectrogram(wave), result.duration_s, result.segments,
                                  predictor.class_names, title=path.name)
            save(fig, Path(plot_dir) / _plot_name(path, taken))
        yield result
