"""Using a trained model: ``Predictor.from_checkpoint(path)``, ``predict_file``, ``predict_long``."""

from esclab.inference.batch import collect_audio_files, predict_paths
from esclab.inference.checkpoint import resolve_checkpoint
from esclab.inference.predictor import Predictor
from esclab.inference.results import ClassScore, Prediction, Segment, Window
from esclab.inference.windows import WindowError

__all__ = ["ClassScore", "Prediction", "Predictor", "Segment", "Window", "WindowError", "collect_audio_files", "predict_paths",
           "resolve_checkpoint"]
