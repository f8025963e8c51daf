"""Checkpoint bundles: weights plus everything needed to rebuild the front end.

A bundle is a ``torch.save``d dict of plain Python values and tensors, so it loads with
``torch.load(weights_only=True)`` and never unpickles arbitrary objects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from esclab import __version__
from esclab.config import AudioConfig, FeatureConfig
from esclab.errors import EsclabError
from esclab.features.frontend import Standardize, build_frontend
from esclab.fsutil import atomic_write
from esclab.models import EscModel, create_model

BUNDLE_FORMAT = "esclab-bundle/1"


class BundleError(EsclabError, ValueError):
    """The file is not a readable esclab bundle; the message says why."""


@dataclass
class Bundle:
    """A loaded bundle: the model (eval mode), its front end, and its metadata."""

    model: EscModel
    frontend: nn.Sequential  # waveform (B, samples) -> standardised log-mel (B, 1, M, T)
    class_names: list[str]
    audio: AudioConfig
    features: FeatureConfig
    model_name: str
    model_kwargs: dict[str, Any]
    metrics: dict[str, Any]
    esclab_version: str
    card: dict[str, Any] = field(default_factory=dict)  # model-card facts (esclab.model_card); {} in older bundles

    @property
    def seconds_per_frame(self) -> float:
        """Time step of one spectrogram frame (hop / sample rate)."""
        return self.features.hop_length / self.audio.sample_rate

    @property
    def calibration(self) -> dict[str, Any] | None:
        """The fold's calibration (:func:`esclab.calibration.calibrate`), already folded into the model's head;
        ``None`` for an uncalibrated model."""
        return self.metrics.get("calibration") or None

    @property
    def reject_below(self) -> float | None:
        """The rejection threshold on the best calibrated probability (``unknown`` below it), or ``None``."""
        return None if self.calibration is None else float(self.calibration["reject_below"])

    def logits(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, samples)`` waveform at ``audio.sample_rate`` -> ``(B, num_classes)`` logits."""
        with torch.no_grad():
            return self.model(self.frontend(wave))


def save_bundle(path: str | Path, model: EscModel, model_name: str, model_kwargs: dict[str, Any],
                class_names: list[str], audio: AudioConfig, features: FeatureConfig,
                standardize: Standardize | None = None, metrics: dict[str, Any] | None = None,
                card: dict[str, Any] | None = None) -> Path:
    """Write a bundle atomically. ``model`` may be channels-last or on any device; ``card``: the model-card facts
    it carries (:func:`esclab.model_card.fold_card_facts`, plain JSON types)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {
        "format": BUNDLE_FORMAT,
        "esclab_version": __version__,
        "model_name": model_name,
        "model_kwargs": dict(model_kwargs),
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "audio": asdict(audio),
        "features": asdict(features),
        "norm_mean": standardize.mean.flatten().cpu() if standardize is not None and standardize.enabled else None,
        "norm_std": standardize.std.flatten().cpu() if standardize is not None and standardize.enabled else None,
        "state_dict": state,
        "metrics": dict(metrics or {}),
        "classifier_reset": bool(getattr(model, "classifier_reset", False)),
        "card": dict(card or {}),
    }
    return atomic_write(path, lambda fh: torch.save(payload, fh))


def load_bundle(path: str | Path, map_location: str = "cpu") -> Bundle:
    """Load a bundle safely (``weights_only=True``) and rebuild model and front end.

    Raises:
        BundleError: missing file, not a bundle, or weights that do not fit the model.
    """
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for bad or unsafe files
        raise BundleError(f"{path}: not a loadable esclab checkpoint ({err})") from err
    if not isinstance(payload, dict) or payload.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: not an esclab bundle (format {payload.get('format') if isinstance(payload, dict) else type(payload).__name__!r})")
    features = FeatureConfig(**payload["features"])
    kwargs = dict(payload["model_kwargs"])
    model = create_model(payload["model_name"], num_classes=payload["num_classes"], input_size=features.input_size,
                         **kwargs)
    if payload.get("classifier_reset"):  # the head was replaced by one Linear (a probe's) before saving
        model.reset_classifier(payload["num_classes"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise BundleError(f"{path}: weights do not fit model {payload['model_name']!r}: {err}") from err
    model.eval()
    audio = AudioConfig(**payload["audio"])
    frontend = nn.Sequential(build_frontend(audio, features),
                             Standardize(payload["norm_mean"], payload["norm_std"])).eval()
    return Bundle(model=model, frontend=frontend, class_names=list(payload["class_names"]), audio=audio,
                  features=features, model_name=payload["model_name"], model_kwargs=kwargs,
                  metrics=dict(payload["metrics"]), esclab_version=payload["esclab_version"],
                  card=dict(payload.get("card") or {}))
