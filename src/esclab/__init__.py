"""esclab: environmental sound classification toolkit."""

from __future__ import annotations

from os import PathLike
from typing import Any

__version__ = "0.2.0"


def pipeline(checkpoint: str | PathLike[str], top_k: int | None = 5, reject_below: float | None = None) -> Any:
    """``esclab.pipeline(RUN_OR_BUNDLE)``: a trained model as a callable, ``classify("dog.wav")`` ->
    ``[{"label": "dog", "score": 0.97}, ...]`` best first, as Hugging Face's audio-classification pipeline.

    See :func:`esclab.inference.pipeline.pipeline` (arguments) and
    :class:`~esclab.inference.pipeline.AudioClassificationPipeline` (inputs, ``top_k``, bad inputs). The
    inference code is imported on the first call, so ``import esclab`` stays cheap (it returns an
    ``AudioClassificationPipeline``; the annotation says ``Any`` so this module names nothing above it).
    """
    from importlib import import_module

    return import_module("esclab.inference.pipeline").pipeline(checkpoint, top_k, reject_below)
