"""Time training steps of a registered model on random log-mels: fp32, channels-last, bf16 autocast.

Usage: python benchmarks/bench_step.py --model paper_cnn --threads 2 --steps 10
       python benchmarks/bench_step.py --model vggish --shape 64,500 --modes channels_last_bf16
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from esclab.config import TrainConfig
from esclab.models import create_model
from esclab.train.optimizer import build_optimizer, penalty_in_loss


def make_step(model_name: str, channels_last: bool, bf16: bool, batch: int, shape: tuple[int, ...], kwargs: dict,
              compile_model: bool = False) -> Callable[[], None]:
    """One training step as esclab runs it (forward, loss, backward, Adam update) on random log-mels."""
    torch.manual_seed(0)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = create_model(model_name, num_classes=50, input_size=shape, **kwargs).train().to(memory_format=memory_format)
    train = TrainConfig(lr=1e-3)
    opt = build_optimizer(model, train)  # esclab's: fused Adam, the L2 penalty as weight decay
    penalty = penalty_in_loss(model, train.optimizer)
    forward = torch.compile(model) if compile_model else model
    x = torch.randn(batch, 1, *shape).contiguous(memory_format=memory_format)
    y = torch.randint(0, 50, (batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(forward(x).float(), y) + (model.regularization_loss() if penalty else 0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def time_steps(model_name: str, channels_last: bool, bf16: bool, steps: int, batch: int, shape: tuple[int, ...],
               kwargs: dict, compile_model: bool = False) -> float:
    step = make_step(model_name, channels_last, bf16, batch, shape, kwargs, compile_model)
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        step()
        if i >= 2:  # warm-up steps (and compilation) excluded
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="paper_cnn")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--kwargs", default="{}", help="JSON model kwargs")
    parser.add_argument("--shape", default="128,215", help="log-mel size MELS,FRAMES; the model is built for it (VGGish: 64,480)")
    parser.add_argument("--modes", default="fp32,channels_last,channels_last_bf16",
                        help="comma list of fp32, channels_last, channels_last_bf16")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (inductor)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {"model": args.model, "threads": args.threads, "batch": args.batch}
    shape = tuple(int(v) for v in args.shape.split(","))
    modes = {"fp32": (False, False), "channels_last": (True, False), "channels_last_bf16": (True, True)}
    for name in args.modes.split(","):
        cl, bf16 = modes[name]
        result[f"{name}_s_per_step"] = round(time_steps(args.model, cl, bf16, args.steps, args.batch, shape,
                                                        json.loads(args.kwargs), args.compile), 3)
    result["compiled"] = args.compile
    print(json.dumps(result))


if __name__ == "__main__":
    main()
