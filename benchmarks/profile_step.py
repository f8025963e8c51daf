"""Where a training step's time goes: torch.profiler over a few steps of a registered model.

    python benchmarks/profile_step.py --model paper_cnn --threads 2 --steps 5 --bf16 --channels-last
    python benchmarks/profile_step.py --model paper_cnn --trace runs/profile.json   # chrome://tracing

Prints the top operators by self CPU time (forward, backward and the optimiser together).
"""

from __future__ import annotations

import argparse
import json

import torch
from bench_step import make_step  # benchmarks/ is on sys.path when run as a script
from torch.profiler import ProfilerActivity, profile


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
    step = make_step(args.model, args.channels_last, args.bf16, args.batch,
                     tuple(int(v) for v in args.shape.split(",")), json.loads(args.kwargs))
    step()  # warm-up: allocator and oneDNN primitive caches
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    if args.trace:
        prof.export_chrome_trace(args.trace)


if __name__ == "__main__":
    main()
