"""Distillation from the linear probe: the fine-tune learns the labels and, on the same augmented input, the
probe's answer.

The teacher is the pretrained network with the training split's linear probe as its head (standardised
logistic regression folded into a linear layer, :func:`esclab.train.probe.init_head_from_probe`): the frozen
probe that the fine-tune sets out to beat. It reads the same (augmented, mixed) input as the student at every
step, so it tells the student what the pretrained features make of a clip the labels only describe as a mix
(function matching: Beyer et al., "Knowledge distillation: a good teacher is patient and consistent",
CVPR 2022). The teacher trains nothing and is not part of the tested network or its bundle.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from esclab.models import EscModel
from esclab.train.probe import init_head_from_probe


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton's soft-target loss: ``T^2 KL(softmax(teacher / T) || softmax(student / T))``, mean over the batch.

    Zero when the two agree; the ``T^2`` keeps its gradient on the scale of a cross-entropy whatever ``T``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    log_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    return F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True) * temperature ** 2


def blend_losses(label_loss: torch.Tensor, soft_loss: torch.Tensor, weight: float) -> torch.Tensor:
    """``(1 - weight) * label_loss + weight * soft_loss``."""
    return (1.0 - weight) * label_loss + weight * soft_loss


def probe_teacher(model: EscModel, inputs: np.ndarray, targets: np.ndarray, c: float, seed: int,
                  from_frozen: bool = False) -> tuple[EscModel, dict[str, Any]]:
    """A frozen copy of the (still pretrained) ``model`` with the linear probe of ``inputs`` as its head.

    Call it before training: the copy takes ``model``'s weights as they are. Returns the teacher (eval mode,
    no gradients) and facts for the fold's ``metrics.json`` (``distill_teacher_train_accuracy`` ...).
    """
    teacher = copy.deepcopy(model)
    facts = init_head_from_probe(teacher, inputs, targets, c, seed, from_frozen=from_frozen)
    teacher.requires_grad_(False)
    teacher.eval()
    return teacher, {"distill_teacher": "probe", "distill_teacher_c": c,
                     "distill_teacher_train_accuracy": facts["head_init_train_accuracy"],
                     "distill_teacher_time_s": facts["head_init_time_s"]}
