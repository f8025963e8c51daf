"""Decode a run's test clips again, the way the run's bundle expects them."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from esclab.audio import AudioDecodeError, load_audio
from esclab.config import AudioConfig

log = logging.getLogger(__name__)


def load_clips(paths: Sequence[str], audio: AudioConfig) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``paths`` at ``audio.sample_rate``, padded or trimmed to ``audio.duration``.

    Returns:
        ``(N_ok, samples)`` float32 waveforms and a boolean ``(len(paths),)`` mask of the
        clips that decoded (a clip moved or deleted since training is logged and left out).
    """
    length = audio.num_samples
    waves, ok = [], np.zeros(len(paths), dtype=bool)
    for i, path in enumerate(paths):
        try:
            waves.append(load_audio(path, audio.sample_rate, audio.duration, audio.band_rate))
            ok[i] = True
        except AudioDecodeError as err:
            log.warning("report: %s", err)
    return (np.stack(waves) if waves else np.zeros((0, length), dtype=np.float32)), ok
