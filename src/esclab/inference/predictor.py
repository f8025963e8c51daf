"""``Predictor``: a bundle's model and front end applied to files, waveforms and long recordings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from esclab.bundle import Bundle, load_bundle
from esclab.inference.scorer import Scorer
from esclab.runs import resolve_checkpoint


class Predictor(Scorer):
    """Classifies audio the way the bundle's model was trained: a softmax :class:`Scorer` of ``clip`` inputs.

    Every clip is made like a training clip: decoded to mono, resampled to the bundle's
    ``audio.sample_rate``, then zero-padded at the end or cut to the bundle's clip length
    (``audio.duration``). A 50 ms clip is thus padded with silence, and a file longer than
    the clip length is judged on its first ``audio.duration`` seconds by :meth:`predict_file`;
    :meth:`predict_long` covers a whole recording with sliding windows and averages their
    probabilities.

    Args:
        bundle: a loaded bundle. ``self.bundle`` is a copy holding the model prepared for inference
            (BatchNorms folded, channels-last), so it is no longer one to train or save; ``bundle`` and
            its model are left as they were.
        checkpoint: the file it came from, for display.
        reject_below: the rejection threshold (``unknown`` below it); ``None``: the bundle's own (chosen when
            its fold was calibrated; an uncalibrated bundle rejects nothing), 0: reject nothing.

    Example (a bundle written here from an untrained model; ``esclab cv`` writes one per fold):
        >>> import tempfile
        >>> import numpy as np
        >>> from esclab.bundle import save_bundle
        >>> from esclab.config import AudioConfig, FeatureConfig
        >>> from esclab.models import create_model
        >>> audio, features = AudioConfig(sample_rate=8000, duration=1.0), FeatureConfig(n_mels=32, n_fft=256,
        ...                                                                              hop_length=128, frames=63)
        >>> options = {"channels": [4, 8, 8], "dense_units": [8]}
        >>> model = create_model("paper_cnn_gap", num_classes=2, input_size=features.input_size, **options)
        >>> path = save_bundle(Path(tempfile.mkdtemp()) / "model.ckpt", model, "paper_cnn_gap", options,
        ...                    ["dog", "rain"], audio, features)
        >>> predictor = Predictor.from_checkpoint(path)
        >>> tone = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32)  # 1 s at 16 kHz
        >>> prediction = predictor.predict_wave(tone, sample_rate=16000, top_k=2)
        >>> sorted(score.label for score in prediction.top_k), round(sum(s.score for s in prediction.top_k), 4)
        (['dog', 'rain'], 1.0)
    """

    def __init__(self, bundle: Bundle, checkpoint: Path | None = None, reject_below: float | None = None):
        super().__init__(bundle.model, bundle.frontend, bundle.class_names, bundle.audio, bundle.features,
                         activation="softmax", pooling="mean", inputs="clip",
                         reject_below=bundle.reject_below if reject_below is None else reject_below)
        self.bundle = replace(bundle, model=self.model)
        self.checkpoint = checkpoint

    @classmethod
    def from_checkpoint(cls, path: str | Path, reject_below: float | None = None) -> Predictor:
        """Load a bundle ``.ckpt``, or the best fold's bundle of a run folder (safe ``weights_only`` load).

        ``reject_below``: as in the class (``None``: the bundle's threshold).

        Raises:
            BundleError: not a bundle, or a folder without fold bundles.
        """
        checkpoint = resolve_checkpoint(path)
        return cls(load_bundle(checkpoint), checkpoint, reject_below)

    #: ``N`` clip-length ``(clip_samples,)`` waveforms -> ``(N, num_classes)`` softmax probabilities.
    probabilities = Scorer.scores
