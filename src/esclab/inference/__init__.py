"""Using a model: ``Predictor.from_checkpoint(path)`` (trained) or ``Tagger.from_name(name)`` (AudioSet tags),
both a :class:`Scorer`; ``predict_paths`` scores files and folders with either."""

from esclab.inference.batch import collect_audio_files, predict_paths
from esclab.inference.predictor import Predictor
from esclab.inference.results import ClassScore, Prediction, Segment, Window, WindowError
from esclab.inference.scorer import Scorer
from esclab.inference.tagging import Tagger
from esclab.runs import resolve_checkpoint

__all__ = ["ClassScore", "Prediction", "Predictor", "Scorer", "Segment", "Tagger", "Window", "WindowError",
           "collect_audio_files", "predict_paths", "resolve_checkpoint"]
