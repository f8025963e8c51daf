"""Weight averaging (``train.weight_averaging``): what the averaged network is, and what the config refuses."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from esclab.config import ConfigError, TrainConfig, load_config
from esclab.train.averaging import TrajectoryAverage, build_weight_averaging, interpolate_weights


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


class Trajectory(L.Callback):
    """The weights after every optimiser step and at the end of every epoch (before averaging replaces them)."""

    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []
        self.epochs: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, *args):
        self.steps.append({k: v.detach().clone() for k, v in pl_module.net.named_parameters()})

    def on_train_epoch_end(self, trainer, pl_module):
        self.epochs.append({k: v.detach().clone() for k, v in pl_module.net.named_parameters()})


def fit(t: TrainConfig) -> tuple[Tiny, Trajectory, TrajectoryAverage | None]:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(24, 3), torch.randint(0, 2, (24,)))
    model, seen, averaging = Tiny(), Trajectory(), build_weight_averaging(t)
    callbacks = [seen] + [c for c in [averaging] if c is not None]
    trainer = L.Trainer(max_epochs=t.max_epochs, callbacks=callbacks, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, DataLoader(data, batch_size=8))
    return model, seen, averaging


def test_swa_leaves_the_mean_of_the_end_of_epoch_weights_from_its_first_epoch_on():
    model, seen, averaging = fit(TrainConfig(weight_averaging="swa", average_from_epoch=2, max_epochs=4))
    for name, value in model.net.named_parameters():
        expected = torch.stack([seen.epochs[2][name], seen.epochs[3][name]]).mean(0)
        torch.testing.assert_close(value.detach(), expected)
    # not merely the last weights
    assert not torch.allclose(model.net[2].weight.detach(), seen.epochs[3]["2.weight"])
    # what metrics.json records: epochs 3 and 4 (one-based) entered the average
    assert averaging.facts() == {"weight_averaging": "swa", "averaged_from_epoch": 3, "averaged_updates": 2}


def test_ema_follows_every_step_from_its_first_epoch_on():
    decay = 0.5
    model, seen, averaging = fit(TrainConfig(weight_averaging="ema", ema_decay=decay, average_from_epoch=1,
                                             max_epochs=3))
    steps_per_epoch = len(seen.steps) // 3  # three epochs
    for name, value in model.net.named_parameters():
        ema = seen.steps[steps_per_epoch][name]  # the first step of epoch 1 starts the average
        for step in seen.steps[steps_per_epoch + 1:]:
            ema = decay * ema + (1 - decay) * step[name]
        torch.testing.assert_close(value.detach(), ema)
    assert averaging.facts() == {"weight_averaging": "ema", "averaged_from_epoch": 2,
                                 "averaged_updates": len(seen.steps) - steps_per_epoch}


def test_no_averaging_builds_no_callback():
    assert build_weight_averaging(TrainConfig()) is None


@pytest.mark.parametrize("override, key", [
    ("train.weight_averaging=mean", "train.weight_averaging"),
    ("train.ema_decay=1.0", "train.ema_decay"),
    ("train.average_from_epoch=60", "train.average_from_epoch"),
])
def test_the_config_refuses_an_average_that_cannot_be(override, key):
    overrides = ["train.weight_averaging=ema", "train.max_epochs=60", override]
    with pytest.raises(ConfigError, match=key):
        load_config("configs/experiment/paper_cnn.yaml", overrides)


def test_interpolate_weights_lerps_floats_keeps_counters_and_refuses_other_networks():
    start = {"w": torch.zeros(2, 3), "n": torch.tensor(0)}
    end = {"w": torch.full((2, 3), 4.0), "n": torch.tensor(7)}
    mid = interpolate_weights(start, end, 0.25)
    assert torch.equal(mid["w"], torch.ones(2, 3)) and mid["n"].item() == 7 and mid["n"].dtype == torch.int64
    assert torch.equal(interpolate_weights(start, end, 0.0)["w"], start["w"])
    assert torch.equal(interpolate_weights(start, end, 1.0)["w"], end["w"])
    with pytest.raises(ValueError, match="only in the end"):
        interpolate_weights(start, {**end, "extra": torch.ones(1)}, 0.5)
    with pytest.raises(ValueError, match=r"w is \(2, 3\) at the start and \(3, 2\) at the end"):
        interpolate_weights(start, {**end, "w": torch.ones(3, 2)}, 0.5)
