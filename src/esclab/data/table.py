"""The clip table every dataset produces: one row per usable clip.

Columns: ``path`` (absolute), ``clip_id`` (file stem), ``label`` (class name),
``target`` (class index), ``fold`` (int; 0 when the source has no folds), ``group`` (str: the
source recording, ESC-50's ``src_file``; the clip's own id where the source names none). Clips of one
group never sit on both sides of a validation split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from esclab.audio import AUDIO_EXTENSIONS

COLUMNS = ["path", "clip_id", "label", "target", "fold", "group"]


class Skipped(NamedTuple):
    """A clip that could not be used: its path, why, and the fold it belonged to."""

    path: str
    reason: str
    fold: int


@dataclass
class ClipTable:
    """Clips plus the rows that could not be used (``skipped``)."""

    clips: pd.DataFrame
    class_names: list[str]
    skipped: list[Skipped] = field(default_factory=list)
    metadata: Path | None = None  # the file the clips were listed in (ESC-50's meta/esc50.csv, a folder's CSV)

    def __len__(self) -> int:
        return len(self.clips)

    def folds(self) -> list[int]:
        return sorted(int(k) for k in self.clips["fold"].unique())

    def without(self, bad: dict[str, str]) -> ClipTable:
        """A copy without the clips in ``bad`` (path -> reason), which join ``skipped``."""
        keep = ~self.clips["path"].isin(bad)
        folds = dict(zip(self.clips["path"], self.clips["fold"], strict=True))
        skipped = self.skipped + [Skipped(path, reason, int(folds[path])) for path, reason in sorted(bad.items())]
        return ClipTable(self.clips[keep].reset_index(drop=True), self.class_names, skipped, self.metadata)

    def without_folds(self, folds: list[int]) -> ClipTable:
        """A copy without the clips of ``folds``, usable or skipped: they are not part of the run at all."""
        keep = ~self.clips["fold"].isin(folds)
        skipped = [s for s in self.skipped if s.fold not in folds]
        return ClipTable(self.clips[keep].reset_index(drop=True), self.class_names, skipped, self.metadata)


def find_audio(directory: Path, name: str) -> Path | None:
    """The file for ``name`` in ``directory``, matched by stem over the supported extensions.

    The metadata may say ``x.wav`` while the copy holds ``x.ogg`` or ``x.flac``; the exact
    name wins when it exists.
    """
    exact = directory / name
    if exact.is_file():
        return exact
    stem = Path(name).stem
    for ext in AUDIO_EXTENSIONS:
        candidate = directory / f"{stem}{ext}"
        if candidate.is_file():
            return candidate
    return None


def resolve_rows(rows: pd.DataFrame, audio_dir: Path, class_names: list[str]) -> ClipTable:
    """Turn rows with ``filename, label, fold[, group]`` into a :class:`ClipTable`; absent files are skipped."""
    paths, skipped = [], []
    for name, fold in zip(rows["filename"], rows["fold"], strict=True):
        found = find_audio(audio_dir, str(name))
        paths.append(str(found.resolve()) if found else None)
        if found is None:
            skipped.append(Skipped(str(audio_dir / str(name)), "file not found", int(fold)))
    index = {name: i for i, name in enumerate(class_names)}
    clip_ids = [Path(str(n)).stem for n in rows["filename"]]
    table = pd.DataFrame({
        "path": paths,
        "clip_id": clip_ids,
        "label": rows["label"].astype(str).values,
        "fold": rows["fold"].astype(int).values,
        "group": rows["group"].astype(str).values if "group" in rows.columns else clip_ids,
    })
    table["target"] = table["label"].map(index).astype(int)
    table = table[table["path"].notna()].reset_index(drop=True)
    return ClipTable(table[COLUMNS], class_names, skipped)
