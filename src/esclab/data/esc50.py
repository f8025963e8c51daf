"""ESC-50 (and its ESC-10 subset) from the official metadata and folds.

A root folder holds ``meta/esc50.csv`` and ``audio/``; the CSV names ``.wav`` files but a
copy may hold the same clips as ``.flac`` or ``.ogg`` (matched by stem). When the folder is
absent and we are online, the official archive is downloaded and checked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from esclab.data.table import ClipTable, resolve_rows
from esclab.errors import EsclabError

log = logging.getLogger(__name__)

ARCHIVE_URL = "https://github.com/karoldvl/ESC-50/archive/master.zip"
# sha256 of the official meta/esc50.csv: the archive itself is rebuilt by GitHub on every
# request (its bytes change), so the check is on the metadata it must contain plus the clip count.
METADATA_SHA256 = "8f8cb574a57e381872129b77425ab31a3c69b93a7a82101ede48e0abbb9990ca"
NUM_CLIPS = 2000
NUM_CLIPS_ESC10 = 400
DEFAULT_ROOT = Path("data") / "ESC-50"


class DatasetNotFoundError(EsclabError, FileNotFoundError):
    """The dataset (or its CSV) is neither on disk nor downloadable; the message says how to point at a copy."""


class DatasetError(EsclabError, ValueError):
    """The dataset's metadata cannot be used as it is; the message names the file and why."""


class IncompleteDatasetError(DatasetError):
    """Clips the ESC-50 metadata lists are missing or unreadable; the message names them."""


def require_complete(table: ClipTable, allow_missing: bool, expected: int = NUM_CLIPS, shown: int = 20) -> None:
    """Stop when any clip of the metadata cannot be used, unless ``allow_missing``.

    Published ESC-50 numbers are over all 2000 clips (ESC-10: 400); a run over fewer is not
    comparable, so it needs asking for (``--allow-missing``). A metadata file listing fewer than
    ``expected`` clips (a deliberate subset) gets a warning.

    Raises:
        IncompleteDatasetError: ``table.skipped`` is not empty and ``allow_missing`` is off.
    """
    listed = len(table) + len(table.skipped)
    if listed < expected:
        log.warning("this ESC-50 metadata lists %d clips, not the official %d: numbers are not comparable "
                    "to published results", listed, expected)
    if not table.skipped or allow_missing:
        return
    names = [f"{s.path} ({s.reason})" for s in table.skipped[:shown]]
    more = f"; and {len(table.skipped) - shown} more" if len(table.skipped) > shown else ""
    raise IncompleteDatasetError(
        f"{len(table.skipped)} of the {listed} clips in the ESC-50 metadata cannot be used: {'; '.join(names)}{more}. "
        f"Repair the copy, or pass --allow-missing (set data.allow_missing=true) to run without them; the "
        f"skipped clips are then counted per fold in the run's metrics and report.")


def resolve_root(root: str | Path | None) -> Path:
    """``root`` if given, else ``$ESCLAB_DATA``, else ``./data/ESC-50``."""
    if root:
        return Path(root).expanduser()
    env = os.environ.get("ESCLAB_DATA")
    return Path(env).expanduser() if env else DEFAULT_ROOT


def load_esc50(root: str | Path | None = None, esc10: bool = False, download: bool = True) -> ClipTable:
    """Read ESC-50's metadata and match every row to its audio file.

    Args:
        root: dataset folder (see :func:`resolve_root`).
        esc10: keep only the ESC-10 subset (10 classes, re-indexed 0..9 by name order).
        download: fetch the official archive when the folder is absent.

    Raises:
        DatasetNotFoundError: no metadata at ``root`` and the download is off or fails.
    """
    root = resolve_root(root)
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        if not download:
            raise DatasetNotFoundError(_how_to_point(root, "and downloading is off"))
        download_esc50(root)
    rows = pd.read_csv(meta)
    missing = {"filename", "fold", "target", "category"} - set(rows.columns)
    if missing:
        raise DatasetError(f"{meta}: not ESC-50 metadata, missing columns {sorted(missing)}")
    if esc10:
        rows = rows[rows["esc10"].astype(str).str.lower() == "true"]
    rows = rows.sort_values(["fold", "filename"]).rename(columns={"category": "label"})
    # Several clips are cut from one recording: its id groups them for the validation split.
    rows["group"] = rows["src_file"].astype(str) if "src_file" in rows.columns else rows["filename"].astype(str)
    # Class order follows the official target index, so ESC-50 targets match the metadata.
    names = rows.drop_duplicates("target").sort_values("target")["label"].tolist()
    return dataclasses.replace(resolve_rows(rows, root / "audio", names), metadata=meta.resolve())


def _how_to_point(root: Path, why: str) -> str:
    return (f"ESC-50 not found at {root.resolve()} ({why}). Point esclab at a local copy with "
            f"--data PATH or the ESCLAB_DATA environment variable; the folder must hold meta/esc50.csv "
            f"and audio/. The official archive is {ARCHIVE_URL}.")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_esc50(root: Path, url: str = ARCHIVE_URL, metadata_sha256: str = METADATA_SHA256) -> Path:
    """Download and unpack the official archive into ``root``, then verify it.

    Raises:
        DatasetNotFoundError: offline, or the download does not hold the official dataset.
    """
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent) as tmp:
        archive = Path(tmp) / "esc50.zip"
        try:
            _fetch(url, archive)
        except OSError as err:
            raise DatasetNotFoundError(_how_to_point(root, f"download failed: {err}")) from err
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        top = next(p for p in Path(tmp).iterdir() if p.is_dir() and (p / "meta" / "esc50.csv").is_file())
        verify_esc50(top, metadata_sha256)
        if root.exists():
            shutil.rmtree(root)
        shutil.move(str(top), str(root))
    return root


def verify_esc50(folder: Path, metadata_sha256: str = METADATA_SHA256) -> None:
    """Check the metadata's checksum and that every clip is present."""
    actual = sha256_of(folder / "meta" / "esc50.csv")
    if actual != metadata_sha256:
        raise DatasetNotFoundError(f"{folder}: meta/esc50.csv has sha256 {actual}, expected {metadata_sha256}; "
                                   f"the download is not the official ESC-50")
    count = sum(1 for _ in (folder / "audio").iterdir())
    if count != NUM_CLIPS:
        raise DatasetNotFoundError(f"{folder}: {count} audio files, expected {NUM_CLIPS}")


def _fetch(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc="ESC-50") as bar:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
                bar.update(len(chunk))
