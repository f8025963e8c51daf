"""The clip table every dataset produces: one row per usable clip.

Columns: ``path`` (absolute), ``clip_id`` (file stem), ``label`` (class name),
``target`` (class index), ``fold`` (int; 0 when the source has no folds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from esclab.audio import AUDIO_EXTENSIONS

COLUMNS = ["path", "clip_id", "label", "target", "fold"]


@dataclass
class ClipTable:
    """Clips plus the rows that could not be used (``skipped``: path, reason)."""

    clips: pd.DataFrame
    class_names: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.clips)

    def folds(self) -> list[int]:
        return sorted(int(k) for k in self.clips["fold"].unique())

    def without(self, bad: dict[str, str]) -> ClipTable:
        """A copy without the clips in ``bad`` (path -> reason), which join ``skipped``."""
        keep = ~self.clips["path"].isin(bad)
        skipped = self.skipped + sorted(bad.items())
        return ClipTable(self.clips[keep].reset_index(drop=True), self.class_names, skipped)


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
    """Turn rows with ``filename, label, fold`` into a :class:`ClipTable`; absent files are skipped."""
    paths, skipped = [], []
    for name in rows["filename"]:
        found = find_audio(audio_dir, str(name))
        paths.append(str(found.resolve()) if found else None)
        if found is None:
            skipped.append((str(audio_dir / str(name)), "file not found"))
    index = {name: i for i, name in enumerate(class_names)}
    table = pd.DataFrame({
        "path": paths,
        "clip_id": [Path(str(n)).stem for n in rows["filename"]],
        "label": rows["label"].astype(str).values,
        "fold": rows["fold"].astype(int).values,
    })
    table["target"] = table["label"].map(index).astype(int)
    table = table[table["path"].notna()].reset_index(drop=True)
    return ClipTable(table[COLUMNS], class_names, skipped)
