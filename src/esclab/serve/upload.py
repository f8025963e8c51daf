"""An uploaded file or a live window turned into a waveform, within the server's size and duration limits."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import soundfile as sf
from fastapi import Request, UploadFile

from esclab.audio import AUDIO_EXTENSIONS, AudioDecodeError, check_waveform, conform
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


async def read_body(request: Request, limits: Limits) -> bytes:
    """A request's raw body, refused once it passes ``limits.max_bytes`` (also without ``Content-Length``).

    Raises:
        UploadError: 413 for a body over the limit.
    """
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limits.max_bytes:
            raise UploadError(413, f"the window is larger than the limit of {limits.max_mb:g} MB")
    return bytes(data)


def decode_window(data: bytes, predictor: Predictor, max_seconds: float) -> np.ndarray:
    """Decode a live window (a WAV, or any format soundfile reads) in memory to mono at the model's rate.

    Nothing is written to disk: the bytes are read from memory, the duration is checked from the
    header before the samples are decoded, and the result is resampled like :meth:`Predictor.load` does.

    Raises:
        UploadError: 400 for an empty body, 413 for audio longer than ``max_seconds``, 422 for bytes
            that do not decode to usable audio.
    """
    if not data:
        raise UploadError(400, "the window is empty: send the last seconds of audio as a WAV body")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate, seconds = f.samplerate, f.frames / f.samplerate
            if seconds > max_seconds:
                raise UploadError(413, f"{seconds:.2f} s of audio is over the window limit of {max_seconds:g} s: "
                                       f"send at most the model's clip of {predictor.clip_seconds:g} s")
            raw = f.read(dtype="float32", always_2d=True)
        wave = check_waveform(raw.mean(axis=1))
    except (RuntimeError, ValueError) as err:  # libsndfile's errors are RuntimeErrors
        raise UploadError(422, f"the window is not usable audio: {getattr(err, 'error_string', err)}") from err
    return conform(wave, rate, predictor.sample_rate, band_rate=predictor.audio.band_rate)
