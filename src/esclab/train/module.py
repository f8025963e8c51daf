"""The LightningModule: front end (standardise, SpecAugment, mixup) + a registered model + the loss.

Lightning owns the loop, precision, devices and checkpoints; this module owns the science.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from esclab.augment import build_level_mix, build_mixup, build_spec_augment
from esclab.config import AugmentConfig, TrainConfig
from esclab.features.frontend import Standardize
from esclab.models import create_model
from esclab.train.distill import blend_losses, distillation_loss
from esclab.train.optimizer import build_optimizer, penalty_in_loss
from esclab.tta import tta_probabilities


class ClassifierModule(L.LightningModule):
    """Spectrogram classifier.

    Args:
        model_name: a registered model name.
        num_classes: classes of the head.
        model_kwargs: family options passed to ``create_model``.
        pretrained: weight spec for ``create_model`` (local path or hub name).
        train: optimiser, schedule, loss and speed settings (a ``TrainConfig`` as a dict).
        augment: augmentation settings (an ``AugmentConfig`` as a dict).
        norm_mean: ``(n_mels,)`` per-band mean of the training split, or ``None``.
        norm_std: ``(n_mels,)`` per-band std, or ``None``.
        input_size: ``(n_mels, frames)`` of the features (the feature config states it; models sized for
            their input are built for it).
        pretrained_partial: accept pretrained weights that fill only part of the body.
        frozen_inputs: the data are cached outputs of the model's frozen layers, not log-mels
            (:mod:`esclab.train.frozen`).
    """

    def __init__(self, model_name: str, num_classes: int, model_kwargs: dict[str, Any] | None = None,
                 pretrained: str | None = None, train: dict[str, Any] | None = None,
                 augment: dict[str, Any] | None = None, norm_mean: torch.Tensor | None = None,
                 norm_std: torch.Tensor | None = None, input_size: tuple[int, int | None] | None = None,
                 pretrained_partial: bool = False, frozen_inputs: bool = False):
        super().__init__()
        self.save_hyperparameters(ignore=["norm_mean", "norm_std"])
        self.train_cfg = TrainConfig(**(train or {}))
        self.augment_cfg = AugmentConfig(**(augment or {}))
        self.model = create_model(model_name, num_classes=num_classes, pretrained=pretrained, input_size=input_size,
                                  pretrained_partial=pretrained_partial,
                                  **(model_kwargs or {}))
        self.standardize = Standardize(norm_mean, norm_std)
        self.spec_augment = build_spec_augment(self.augment_cfg)
        self.mixup = build_mixup(self.augment_cfg)
        self.level_mix = build_level_mix(self.augment_cfg)
        self.frozen_inputs = frozen_inputs
        self.num_classes = num_classes
        self.l2_in_loss = penalty_in_loss(self.model, self.train_cfg.optimizer)
        # Accuracy over the epoch, accumulated (and synchronised across devices) by torchmetrics.
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        if self.train_cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.teacher: nn.Module | None = None

    def set_teacher(self, teacher: nn.Module) -> None:
        """The frozen network whose logits the loss matches (``train.distill_weight``). It is kept in the
        checkpoints (a resumed fold needs it) but not in the tested model or its bundle."""
        teacher.requires_grad_(False)
        self.teacher = teacher.eval()

    def train(self, mode: bool = True) -> ClassifierModule:
        """As ``nn.Module.train``, then :meth:`keep_fixed_parts_in_eval`."""
        super().train(mode)
        if mode:
            self.keep_fixed_parts_in_eval()
        return self

    def keep_fixed_parts_in_eval(self) -> None:
        """The teacher always evaluates, and with ``train.freeze_bn_stats`` so does every BatchNorm of the
        model (running statistics kept, affine weights still trained). Lightning does not call ``train()``
        when fitting starts, so this also runs at the start of every training epoch."""
        if self.teacher is not None:
            self.teacher.eval()
        if self.train_cfg.freeze_bn_stats:
            for layer in self.model.modules():
                if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                    layer.eval()

    def on_train_epoch_start(self) -> None:
        self.keep_fixed_parts_in_eval()

    def _layout(self, spec: torch.Tensor) -> torch.Tensor:
        return spec.contiguous(memory_format=torch.channels_last) if self.train_cfg.channels_last else spec

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """The model on what the data module serves: log-mels, or its frozen layers' outputs when it has them."""
        x = self._layout(x)
        return self.model.forward_from_frozen(x) if self.frozen_inputs else self.model(x)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """``(B, 1, M, T)`` log-mel (unstandardised, as cached) -> logits ``(B, num_classes)``; for a model with
        frozen layers, the ``(B, C, H, W)`` output of those layers (as cached) instead of the log-mel."""
        return self._logits(self.standardize(spec))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        spec, target = batch
        soft = F.one_hot(target, self.num_classes).float()
        spec = self.standardize(spec)
        if self.level_mix is not None:  # two clips at once, at the signal level (Kaldi log-mels)
            spec, soft = self.level_mix(spec, soft)
        spec = self.spec_augment(spec)  # with cached frozen layers: on their output maps
        if self.mixup is not None:
            spec, soft = self.mixup(spec, soft)
        teaching = self.teacher is not None and self.train_cfg.distill_weight > 0
        hidden = self._layout(spec)  # what the frozen layers made of the input (the input, if it came cached)
        if teaching and not self.frozen_inputs:
            # The teacher is a copy of the pretrained network: its frozen layers are the student's, so they run
            # once for both, and each network runs only its own upper layers.
            with torch.no_grad():
                hidden = self.model.forward_frozen(hidden)
        logits = self.model.forward_from_frozen(hidden) if teaching or self.frozen_inputs else self.model(hidden)
        loss = F.cross_entropy(logits.float(), soft, label_smoothing=self.train_cfg.label_smoothing)
        if teaching:
            with torch.no_grad():
                taught = self.teacher.forward_from_frozen(hidden)
            soft_loss = distillation_loss(logits, taught, self.train_cfg.distill_temperature)
            self.log("train_distill_loss", soft_loss, on_step=False, on_epoch=True, batch_size=len(target),
                     sync_dist=True)
            loss = blend_losses(loss, soft_loss, self.train_cfg.distill_weight)
        reg = self.model.regularization_loss() if self.l2_in_loss else 0.0  # else it is weight decay
        self.train_acc(logits.argmax(dim=1), target)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(target),
                 sync_dist=True)
        self.log("train_acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss + reg

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        spec, target = batch
        logits = self(spec).float()
        self.val_acc(logits.argmax(dim=1), target)
        self.log("val_loss", F.cross_entropy(logits, target), on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=len(target), sync_dist=True)
        self.log("val_acc", self.val_acc, on_step=False, on_epoch=True, prog_bar=True)

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Class probabilities of the batch, averaged over ``augment.tta_views`` circular time shifts."""
        return tta_probabilities(self, batch[0], self.augment_cfg.tta_views)

    def configure_optimizers(self) -> Any:
        t = self.train_cfg
        optimizer = build_optimizer(self.model, t)
        scheduler = build_scheduler(optimizer, t, self.trainer.estimated_stepping_batches, self.trainer.max_epochs)
        return {"optimizer": optimizer, "lr_scheduler": scheduler} if scheduler else optimizer


def build_scheduler(optimizer: torch.optim.Optimizer, t: TrainConfig, total_steps: int | float,
                    max_epochs: int) -> dict[str, Any] | None:
    """The Lightning scheduler dict for ``t.lr_schedule`` (``None`` for a constant LR)."""
    if t.lr_schedule == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max" if t.monitor.endswith("acc") else "min",
                                                           factor=t.plateau_factor, patience=t.plateau_patience,
                                                           min_lr=t.min_lr)
        return {"scheduler": sched, "monitor": t.monitor, "interval": "epoch"}
    if t.lr_schedule == "onecycle":
        max_lrs = [g["lr"] for g in optimizer.param_groups]
        sched = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lrs, total_steps=int(total_steps))
        return {"scheduler": sched, "interval": "step"}
    if t.lr_schedule == "cosine":
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, max_epochs - t.warmup_epochs),
                                                            eta_min=t.min_lr)
        if t.warmup_epochs:
            warm = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=t.warmup_epochs)
            cosine = torch.optim.lr_scheduler.SequentialLR(optimizer, [warm, cosine], milestones=[t.warmup_epochs])
        return {"scheduler": cosine, "interval": "epoch"}
    return None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
