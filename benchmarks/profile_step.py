"""Where a training step's time goes: torch.profiler over a few steps of a registered model.

    python benchmarks/profile_step.py --model paper_cnn --threads 2 --steps 5 --bf16 --channels-last
    python benchmarks/profile_step.py --model paper_cnn --trace runs/profile.json   # chrome://tracing

Prints the top operators by self CPU time (forward, backward and the optimiser together).
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from esclab.models import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="paper_cnn")
    parser.add_argument("--kwargs", default="{}", help="JSON model kwargs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--shape", default="128,215", help="log-mel size MELS,FRAMES")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--rows", type=int, default=15)
    parser.add_argument("--trace", help="write a chrome trace here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = create_model(args.model, num_classes=50, **json.loads(args.kwargs)).train().to(memory_format=memory_format)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.randn(args.batch, 1, *(int(v) for v in args.shape.split(","))).contiguous(memory_format=memory_format)
    y = torch.randint(0, 50, (args.batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            loss = F.cross_entropy(model(x).float(), y) + model.regularization_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up: allocator and oneDNN primitive caches
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    if args.trace:
        prof.export_chrome_trace(args.trace)


if __name__ == "__main__":
    main()
