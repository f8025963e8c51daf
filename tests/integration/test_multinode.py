"""Lightning's multi-node DDP: two "machines" (two processes on localhost, NODE_RANK 0 and 1) train one fold.

Each node runs the same command with ``train.num_nodes=2`` and Lightning's environment variables
(MASTER_ADDR, MASTER_PORT, NODE_RANK), exactly as on two real machines; each has its own output and
cache folder, and only global rank 0 writes results.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # spawns two Lightning processes (~14 s on 2 cores); `make test-all` runs it
def test_two_nodes_one_process_each(tiny_overrides, tmp_path):
    port = free_port()
    procs = []
    for node in (0, 1):
        args = [sys.executable, "-m", "esclab.cli", "cv", "--config", "configs/experiment/paper_cnn.yaml",
                "--folds", "1", "--devices", "1", "--strategy", "ddp", "--out", str(tmp_path / f"node{node}")]
        for o in [*tiny_overrides, f"features.cache_dir={tmp_path / f'cache{node}'}", "train.num_nodes=2"]:
            args += ["--set", o]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "NODE_RANK": str(node)}
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    metrics = json.loads((tmp_path / "node0" / "fold_1" / "metrics.json").read_text())
    assert metrics["devices"] == 2  # world size: 2 nodes x 1 process
    assert not (tmp_path / "node1" / "fold_1" / "metrics.json").exists()  # rank 1 writes nothing
    assert "accuracy" not in outputs[1][0]
