"""A tiny paper CNN memorises 20 clips through the real LightningModule and Trainer."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from esclab.train.module import ClassifierModule


def test_paper_cnn_overfits_20_clips():
    L.seed_everything(0, verbose=False)
    specs = torch.randn(20, 1, 32, 60) * 10 - 40  # dB-like values, random "clips"
    targets = torch.arange(20) % 4
    module = ClassifierModule("paper_cnn", 4, {"channels": (8, 16, 16), "dense_units": (32,), "dropout": 0.0},
                              train={"lr": 3e-3, "lr_schedule": "none", "monitor": "train_loss"}, input_size=(32, 60))
    loader = DataLoader(TensorDataset(specs, targets), batch_size=10, shuffle=True)
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, loader)
    module.eval()
    with torch.no_grad():
        logits = module(specs)
    assert (logits.argmax(1) == targets).all()
    assert torch.nn.functional.cross_entropy(logits, targets) < 0.1
