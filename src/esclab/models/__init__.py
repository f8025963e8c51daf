"""Model zoo. Importing this package registers every model family."""

from esclab.models import (  # noqa: F401  (each module registers its variants)
    ast,
    attention_cnn,
    cnn,
    conformer,
    efficientat,
    timm_backbones,
    vggish,
)
from esclab.models._base import EscModel
from esclab.models._registry import create_model, is_model, list_models, register_model

__all__ = ["EscModel", "create_model", "is_model", "list_models", "register_model"]
