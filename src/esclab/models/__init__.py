"""Model zoo. Importing this package registers every model family."""

from esclab.models import (  # noqa: F401  (each module registers its variants)
    ast,
    attention_cnn,
    cnn,
    conformer,
    efficientat,
    ensemble,
    timm_backbones,
    vggish,
)
from esclab.models._base import EscModel
from esclab.models._registry import create_model, is_model, list_models, register_model
from esclab.models.fusion import fold_batchnorm, prepare_for_inference

__all__ = ["EscModel", "create_model", "fold_batchnorm", "is_model", "list_models", "prepare_for_inference",
           "register_model"]
