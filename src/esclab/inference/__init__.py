"""Using a model: ``Predictor.from_checkpoint(path)`` (trained) or ``Tagger.from_name(name)`` (AudioSet tags)."""

from esclab.inference.batch import collect_audio_files, predict_paths
from esclab.inference.predictor import Predictor
from esclab.inference.results import ClassScore, Prediction, Segment, Window, WindowError
from esclab.inference.tagging import Tagger, Tags, tag_paths
from esclab.runs import resolve_checkpoint

__all__ = ["ClassScore", "Prediction", "Predictor", "Segment", "Tagger", "Tags", "Window", "WindowError",
           "collect_audio_files", "predict_paths", "resolve_checkpoint", "tag_paths"]
