"""An uploaded file turned into a waveform, within the server's size and duration limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
from fastapi import UploadFile

from esclab.audio import AUDIO_EXTENSIONS, AudioDecodeError
from esclab.inference import Predictor


@dataclass
class Limits:
    """Largest upload in MiB and longest audio in seconds the server accepts."""

    max_mb: float
    max_seconds: float

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * 2**20)


class UploadError(Exception):
    """An upload the server refuses: the HTTP status and a message for the user."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def decode_upload(upload: UploadFile, predictor: Predictor, limits: Limits) -> np.ndarray:
    """Decode an upload to a mono waveform at the model's rate.

    The bytes go to a temporary file (deleted afterwards) and through :func:`esclab.audio.load_audio`,
    like every other file; error messages name the uploaded file, not the temporary one.

    Raises:
        UploadError: 400 for an empty upload, 413 for one over ``limits`` (bytes or seconds),
            422 for one that does not decode to usable audio.
    """
    name = upload.filename or "upload"
    data = upload.file.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise UploadError(413, f"{name}: the upload is larger than the limit of {limits.max_mb:g} MB")
    if not data:
        raise UploadError(400, f"{name}: the upload is empty")
    suffix = Path(name).suffix.lower()
    with TemporaryDirectory(prefix="esclab-upload-") as tmp:
        path = Path(tmp) / ("upload" + (suffix if suffix in AUDIO_EXTENSIONS else ""))
        path.write_bytes(data)
        try:
            wave = predictor.load(path)
        except AudioDecodeError as err:
            reason = str(err).removeprefix(f"{path}: ").replace(str(path), name)
            raise UploadError(422, f"{name}: not usable audio: {reason}") from err
    seconds = len(wave) / predictor.sample_rate
    if seconds > limits.max_seconds:
        raise UploadError(413, f"{name}: {seconds:.1f} s of audio is over the limit of {limits.max_seconds:g} s")
    return wave
