"""Predict many files and folders, one result per file, never stopping at a bad one."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from esclab.audio import AUDIO_EXTENSIONS, AudioDecodeError
from esclab.evaluate.plots import save
from esclab.inference.predictor import Predictor
from esclab.inference.results import Prediction
from esclab.inference.timeline import timeline_figure


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


def predict_paths(predictor: Predictor, paths: Iterable[str | Path], top_k: int = 3, long: bool = False,
                  window_s: float | None = None, hop_s: float | None = None,
                  plot_dir: str | Path | None = None) -> list[Prediction]:
    """Classify every audio file under ``paths``; undecodable files give error records.

    Args:
        predictor: the model to use.
        paths: files and folders.
        top_k: classes per result.
        long: sliding windows over each whole file (:meth:`Predictor.predict_long_wave`)
            instead of one clip.
        window_s: window length for ``long`` (default: the model's clip length).
        hop_s: hop for ``long`` (default: half the window).
        plot_dir: with ``long``, write a timeline PNG per file here (``STEM.png``); unused otherwise.

    Returns:
        One :class:`Prediction` per file, in order; ``error`` set for the files that failed.

    Raises:
        WindowError: with ``long``, window settings that cannot work (checked before any file).
    """
    if long:
        predictor.window_samples(window_s, hop_s)
    results, taken = [], set()
    if plot_dir is not None:
        Path(plot_dir).mkdir(parents=True, exist_ok=True)
    for path in collect_audio_files(paths):
        try:
            wave = predictor.load(path)
        except AudioDecodeError as err:
            results.append(Prediction.failed(path, err))
            continue
        if not long:
            results.append(predictor.predict_wave(wave, predictor.sample_rate, top_k, str(path)))
            continue
        result = predictor.predict_long_wave(wave, predictor.sample_rate, window_s, hop_s, top_k, str(path))
        results.append(result)
        if plot_dir is not None:
            fig = timeline_figure(predictor.spectrogram(wave), result.duration_s, result.segments,
                                  predictor.class_names, title=path.name)
            save(fig, Path(plot_dir) / _plot_name(path, taken))
    return results
