"""Time building the log-mel cache for a whole dataset, cold (empty cache) then warm.

Usage: python benchmarks/bench_feature_cache.py --data ../shared/esc50 --cache-dir cache/features
"""

from __future__ import annotations

import argparse
import json
import shutil
import time

import torch

from esclab.config import AudioConfig, FeatureConfig
from esclab.data import load_esc50
from esclab.features.cache import FeatureCache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--cache-dir", default="cache/features")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="do not empty the cache first")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    table = load_esc50(args.data, download=False)
    audio, features = AudioConfig(), FeatureConfig(cache_dir=args.cache_dir)
    folder = FeatureCache(audio, features).folder
    if folder.exists() and not args.keep:
        shutil.rmtree(folder)
    result = {"clips": len(table), "threads": args.threads}
    for phase in ("cold", "warm"):
        cache = FeatureCache(audio, features)
        start = time.perf_counter()
        specs, bad = cache.load(table.clips["path"].tolist(), table.clips["clip_id"].tolist())
        result[f"{phase}_s"] = round(time.perf_counter() - start, 2)
        result[f"{phase}_computed"] = cache.computed
    result["shape"] = list(specs.shape)
    result["skipped"] = len(bad)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
