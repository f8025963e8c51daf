"""AudioSet tagging with no training: ``Tagger.from_name("efficientat:mn04_as").tag_file(path)``.

EfficientAT's AudioSet MobileNets score 527 AudioSet classes (names in
``esclab/resources/audioset_labels.csv``). Tagging is multi-label: every class gets its own
sigmoid probability of being present, so scores do not sum to 1 and several classes can be
near 1 at once ("Dog", "Bark", "Animal"). That differs from :class:`~esclab.inference.Predictor`,
whose single-label softmax probabilities do sum to 1; both are a :class:`~esclab.inference.scorer.Scorer`
and each record says which scores it carries (:attr:`~esclab.inference.Prediction.scores`).

The network is fully convolutional with a global average pool, so a clip of any length goes
through it whole, unpadded (``inputs="whole"``): :meth:`Tagger.tag_wave` scores a recording of up
to ``max_seconds`` (30 s) in one pass. Longer recordings are cut into consecutive
``max_seconds`` pieces and each class keeps its highest score over them (``pooling="max"``: a
sound heard in any piece is in the recording), which bounds memory. :meth:`Tagger.tag_long` gives
a timeline of sliding windows instead.
"""

from __future__ import annotations

import csv
import io
from functools import cache
from importlib import resources

import torch

from esclab.config import AudioConfig, FeatureConfig
from esclab.features.frontend import build_frontend
from esclab.inference.scorer import Scorer
from esclab.models import create_model, is_model
from esclab.models.efficientat import AUDIOSET_CLASSES
from esclab.models.pretrained import load_pretrained
from esclab.weights import KNOWN_WEIGHTS, WeightsError, resolve_weights

DEFAULT_WEIGHTS = "efficientat:mn04_as"
_CONTRACT = KNOWN_WEIGHTS[DEFAULT_WEIGHTS]  # the weights state their rate and front end (esclab.weights)
SAMPLE_RATE = _CONTRACT.sample_rate
#: The weights' front end (``WeightsSpec.frontend``) with any number of frames.
FEATURES = FeatureConfig(**_CONTRACT.frontend, top_db=None, frames=None)
BATCH_SIZE = 16


@cache
def audioset_labels() -> tuple[str, ...]:
    """The 527 AudioSet display names, in the order of the taggers' outputs (package data)."""
    text = resources.files("esclab").joinpath("resources", "audioset_labels.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    if [int(r["index"]) for r in rows] != list(range(AUDIOSET_CLASSES)):
        raise RuntimeError(f"audioset_labels.csv must list indices 0..{AUDIOSET_CLASSES - 1} in order")
    return tuple(r["display_name"] for r in rows)


class Tagger(Scorer):
    """An AudioSet tagger: a sigmoid :class:`Scorer` of ``whole`` inputs, max-pooled (see the module notes).

    Args:
        model: an EfficientAT MobileNet with the 527-class AudioSet head. A copy of it is prepared for
            inference (:class:`Scorer`); ``model`` is left as it was.
        weights: the weights' name, for display.
        max_seconds: the longest audio scored in one pass (the clip length), and the longest window.
        reject_below: the only rejection rule a tagger has (no bundle, so no calibrated threshold): a clip or
            window whose best sigmoid score is below it is answered ``unknown``; ``None``: never.

    Raises:
        ValueError: a model without the AudioSet head, or ``max_seconds`` <= 0.
    """

    default_top_k = 5
    default_window_s = 5.0

    def __init__(self, model: torch.nn.Module, weights: str = DEFAULT_WEIGHTS, max_seconds: float = 30.0,
                 reject_below: float | None = None):
        if getattr(model, "num_classes", None) != AUDIOSET_CLASSES:
            raise ValueError(f"a tagger needs a {AUDIOSET_CLASSES}-class AudioSet head, "
                             f"got {getattr(model, 'num_classes', None)} classes")
        if max_seconds <= 0:
            raise ValueError(f"max_seconds must be > 0, got {max_seconds}")
        audio = AudioConfig(sample_rate=SAMPLE_RATE, duration=max_seconds)
        super().__init__(model, build_frontend(audio, FEATURES), audioset_labels(), audio, FEATURES,
                         activation="sigmoid", pooling="max", inputs="whole", batch_size=BATCH_SIZE,
                         reject_below=reject_below)
        self.weights = weights

    @classmethod
    def from_name(cls, name: str = DEFAULT_WEIGHTS, download: bool = True) -> Tagger:
        """Build the MobileNet of the weights' width (``mn04`` for 0.4, ``mn10`` for 1.0) and load them.

        Args:
            name: a key of :data:`esclab.weights.KNOWN_WEIGHTS`, e.g. ``"efficientat:mn10_as"``.
            download: whether weights found in no search folder may be downloaded.

        Raises:
            WeightsError: unknown name, weights not found or not downloadable, wrong checksum, or a
                file that does not fill the whole model.
        """
        resolved = resolve_weights(name, download=download)
        arch = resolved.spec.arch
        if (resolved.spec.sample_rate, resolved.spec.frontend) != (SAMPLE_RATE, _CONTRACT.frontend):
            raise WeightsError(f"{name}: trained at {resolved.spec.sample_rate} Hz on {resolved.spec.frontend}; "
                               f"the tagger runs {SAMPLE_RATE} Hz and {_CONTRACT.frontend}")
        if not is_model(arch):
            raise WeightsError(f"{name}: no registered model for width {resolved.spec.width_mult:g} ({arch})")
        model = create_model(arch, num_classes=AUDIOSET_CLASSES)
        report = load_pretrained(model, str(resolved.path))
        if report.skipped or report.missing:
            raise WeightsError(f"{name}: {resolved.path} does not fill {arch}: {len(report.skipped)} tensors "
                               f"skipped, {len(report.missing)} left at init")
        return cls(model, name)

    # The tagger's verbs for the scorer's methods.
    tag_wave = Scorer.predict_wave
    tag_long_wave = Scorer.predict_long_wave
    tag_file = Scorer.predict_file
    tag_long = Scorer.predict_long
