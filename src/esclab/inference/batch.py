"""Score many files and folders with any :class:`~esclab.inference.scorer.Scorer` (a ``Predictor`` or a
``Tagger``), one result per file, never stopping at a bad one."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np

from esclab.audio import AUDIO_EXTENSIONS, AudioDecodeError
from esclab.inference.events import EventSettings
from esclab.inference.results import Prediction
from esclab.inference.scorer import Scorer, batches

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


def _prefetch(pool: Executor, fn: Callable[[T], R], items: Iterable[T], ahead: int) -> Iterator[R]:
    """``map(fn, items)`` on ``pool``, in order, with at most ``ahead`` calls running or done and unread."""
    pending: deque[Future[R]] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _predict_chunk(scorer: Scorer, files: list[Path], top_k: int) -> list[Prediction]:
    """Decode a few files and score the good ones in shared forward passes; error records for the others."""
    outcomes: list[int | AudioDecodeError] = []  # each file's length in samples, or why it failed

    def decoded() -> Iterator[np.ndarray]:
        for path in files:
            try:
                wave = scorer.load(path)
            except AudioDecodeError as err:
                outcomes.append(err)
                continue
            outcomes.append(len(wave))
            yield wave

    rows = iter(scorer.pooled_scores(decoded()))
    return [Prediction.failed(path, outcome, scorer.score_note) if isinstance(outcome, AudioDecodeError)
            else scorer.clip_prediction(next(rows), outcome, top_k, str(path))
            for path, outcome in zip(files, outcomes, strict=True)]


def predict_clips(scorer: Scorer, files: Sequence[Path], top_k: int | None = None,
                  workers: int | None = None, batch_size: int = CHUNK_SIZE) -> Iterator[Prediction]:
    """One clip per file, in order: ``workers`` threads each decode ``batch_size`` files and score them.

    Each thread does the whole job for its chunk (libsndfile, soxr and torch all work outside
    the GIL), so the cores stay busy without a hand-off between a decoding stage and a model
    stage. At most two chunks per thread are in flight, and a chunk's files are decoded as its
    forward passes need them (:meth:`Scorer.pooled_scores`), so memory stays bounded however many
    files there are. A file that does not decode gives its error record.

    Args:
        scorer: the model to use.
        files: audio files.
        top_k: classes per result (default: the scorer's).
        workers: threads (default: the number of CPUs, at most 8).
        batch_size: files per chunk, i.e. clips per forward pass for ``clip`` inputs.
    """
    workers = workers or min(8, os.cpu_count() or 1)
    top_k = scorer.resolve_top_k(top_k)
    with ThreadPoolExecutor(workers, thread_name_prefix="esclab-predict") as pool:
        chunks = _prefetch(pool, partial(_predict_chunk, scorer, top_k=top_k), batches(files, batch_size),
                           2 * workers)
        for chunk in chunks:
            yield from chunk


def predict_paths(scorer: Scorer, paths: Iterable[str | Path], top_k: int | None = None, long: bool = False,
                  window_s: float | None = None, hop_s: float | None = None,
                  plot_dir: str | Path | None = None, workers: int | None = None,
                  progress: Callable[[Prediction], None] | None = None,
                  events: EventSettings | None = None) -> list[Prediction]:
    """Score every audio file under ``paths`` (a ``Predictor`` or a ``Tagger``); bad files give error records.

    Args:
        scorer: the model to use.
        paths: files and folders.
        top_k: classes per result, and per window with ``long`` (default: the scorer's ``default_top_k``).
        long: sliding windows over each whole file (:meth:`Scorer.predict_long_wave`), one
            file at a time, instead of one clip per file (:func:`predict_clips`: parallel
            decoding, batched model).
        window_s: window length for ``long`` (default: the scorer's ``default_window_s``; with ``events``,
            :data:`~esclab.inference.events.EVENT_WINDOW_S` at most the clip length).
        hop_s: hop for ``long`` (default: half the window; with ``events``,
            :data:`~esclab.inference.events.EVENT_HOP_S`).
        plot_dir: with ``long``, write a timeline PNG per file here (``STEM.png``); unused otherwise.
        workers: decoding threads for one clip per file (see :func:`predict_clips`).
        progress: called with each result as it is made (the CLI counts them with :class:`esclab.progress.Progress`).
        events: with ``long``, also find each file's sound events with these settings
            (:meth:`Scorer.detect_events`: the results' ``events``); unused otherwise.

    Returns:
        One :class:`Prediction` per file, in order; ``error`` set for the files that failed.

    Raises:
        WindowError: with ``long``, window settings that cannot work (checked before any file).
        ValueError: ``top_k`` < 1 (checked before any file).
    """
    top_k = scorer.resolve_top_k(top_k)
    if long:
        (scorer.window_samples if events is None else scorer.event_window_samples)(window_s, hop_s)
    files = collect_audio_files(paths)
    made = (_predict_long(scorer, files, top_k, window_s, hop_s, plot_dir, events) if long
            else predict_clips(scorer, files, top_k, workers))
    results = []
    for result in made:
        results.append(result)
        if progress is not None:
            progress(result)
    return results


def _predict_long(scorer: Scorer, files: list[Path], top_k: int, window_s: float | None,
                  hop_s: float | None, plot_dir: str | Path | None,
                  events: EventSettings | None = None) -> Iterator[Prediction]:
    taken: set[str] = set()
    if plot_dir is not None:
        Path(plot_dir).mkdir(parents=True, exist_ok=True)
        # matplotlib costs most of a second to import: only a run that draws timelines pays for it.
        from esclab.evaluate.plots import save
        from esclab.inference.timeline import timeline_figure
    for path in files:
        try:
            wave = scorer.load(path)
        except AudioDecodeError as err:
            yield Prediction.failed(path, err, scorer.score_note)
            continue
        if events is None:
            result = scorer.predict_long_wave(wave, scorer.sample_rate, window_s, hop_s, top_k, str(path))
        else:
            result = scorer.detect_events(wave, scorer.sample_rate, window_s, hop_s, events, top_k, str(path))
        if plot_dir is not None:
            fig = timeline_figure(scorer.spectrogram(wave), result.duration_s, result.segments,
                                  scorer.class_names, title=path.name)
            save(fig, Path(plot_dir) / _plot_name(path, taken))
        yield result
