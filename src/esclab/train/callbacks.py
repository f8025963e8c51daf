"""Small Lightning callbacks."""

from __future__ import annotations

import time
from typing import Any

import lightning as L


class EpochTimer(L.Callback):
    """Records the wall time of each complete training epoch (with its validation pass) in ``times``.

    An epoch cut short (``max_time`` ran out) is not recorded: it would understate the epoch time.
    """

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0
        self._batches = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()
        self._batches = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._batches += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._batches >= trainer.num_training_batches:
            self.times.append(time.perf_counter() - self._start)

    def state_dict(self) -> dict[str, Any]:
        return {"times": list(self.times)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.times = list(state_dict.get("times", []))
