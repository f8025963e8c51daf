"""Load test of the web API on loopback: requests/s and latency percentiles under concurrent clients.

Usage: python benchmarks/bench_serve.py --checkpoint CKPT --clip FILE [--clients 16] [--requests 200]
       [--time-cap 120] [--scenarios plain,pictures,unbatched,batched]

Each scenario starts its own server in a subprocess on 127.0.0.1 and a free port, waits for
``/api/health``, sends ``2 x --clients`` warm-up requests, then lets ``--clients`` threads (each
with its own keep-alive connection) post ``--clip`` until ``--requests`` have been sent or
``--time-cap`` seconds have passed, and stops the server. Scenarios:

* ``plain``: ``benchmarks/plain_pipeline.py serve``, the plainest FastAPI app (librosa log-mel
  and one forward pass per request): the baseline every ratio is taken against;
* ``pictures``: ``esclab serve``, every request with ``?pictures=true`` (spectrogram and
  Grad-CAM, as every request was answered before issue 18);
* ``unbatched``: ``esclab serve --max-batch 1``, JSON only;
* ``batched``: ``esclab serve`` with its defaults, JSON only.

Printed as JSON per scenario: requests sent and answered (status 200), errors, wall time,
requests/s, latency mean/p50/p95/p99/max in ms, the server's batching counters (esclab only),
and the ratio of requests/s to ``plain``; with the load average and the machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from esclab.provenance import cpu_model

HERE = Path(__file__).resolve().parent
SCENARIOS = ("plain", "pictures", "unbatched", "batched")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def multipart(path: Path) -> tuple[bytes, str]:
    """The body and content type of a form with one ``file`` field holding ``path``."""
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    return head + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def server_command(scenario: str, checkpoint: str, port: int) -> list[str]:
    if scenario == "plain":
        return [sys.executable, str(HERE / "plain_pipeline.py"), "serve", "--checkpoint", checkpoint,
                "--port", str(port)]
    extra = ["--max-batch", "1"] if scenario == "unbatched" else []
    return [sys.executable, "-m", "esclab.cli", "serve", checkpoint, "--port", str(port), *extra]


def get_json(port: int, path: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def wait_for(port: int, proc: subprocess.Popen, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            if get_json(port, "/api/health").get("status") == "ok":
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.3)
    raise RuntimeError("the server did not answer /api/health in time")


@dataclass
class Load:
    """Requests still to send, and what came back (shared by the client threads)."""

    remaining: int
    deadline: float
    latencies: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> bool:
        with self.lock:
            if self.remaining <= 0 or time.monotonic() > self.deadline:
                return False
            self.remaining -= 1
            return True


def client(port: int, url: str, body: bytes, content_type: str, load: Load) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": content_type}
    while load.take():
        start = time.perf_counter()
        try:
            conn.request("POST", url, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as err:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            with load.lock:
                load.errors.append(repr(err))
            continue
        elapsed = time.perf_counter() - start
        with load.lock:
            load.latencies.append(elapsed)
            load.statuses.append(status)
    conn.close()


def blast(port: int, url: str, body: bytes, content_type: str, clients: int, requests: int,
          time_cap: float) -> dict:
    load = Load(remaining=requests, deadline=time.monotonic() + time_cap)
    threads = [threading.Thread(target=client, args=(port, url, body, content_type, load)) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = 1e3 * np.array(load.latencies or [np.nan])
    ok = sum(s == 200 for s in load.statuses)
    return {"sent": requests - load.remaining, "answered_200": ok, "other_status": len(load.statuses) - ok,
            "errors": len(load.errors), "first_errors": load.errors[:3], "wall_s": wall, "requests_per_s": ok / wall,
            "latency_ms": {"mean": float(ms.mean()), "p50": float(np.percentile(ms, 50)),
                           "p95": float(np.percentile(ms, 95)), "p99": float(np.percentile(ms, 99)),
                           "max": float(ms.max())}}


def run_scenario(scenario: str, checkpoint: str, clip: Path, clients: int, requests: int, time_cap: float) -> dict:
    port = free_port()
    proc = subprocess.Popen(server_command(scenario, checkpoint, port), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(port, proc)
        body, content_type = multipart(clip)
        url = "/api/predict?pictures=true" if scenario == "pictures" else "/api/predict"
        blast(port, url, body, content_type, clients, 2 * clients, time_cap)  # warm-up, not counted
        result = {"load_before": os.getloadavg(), **blast(port, url, body, content_type, clients, requests, time_cap),
                  "load_after": os.getloadavg()}
        if scenario != "plain":
            result["server_batching"] = get_json(port, "/api/health")["batching"]
        return result
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="bundle .ckpt or run folder (best fold)")
    parser.add_argument("--clip", type=Path, required=True, help="the audio file every request posts")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--time-cap", type=float, default=120.0, help="seconds per scenario's measured phase")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, of {SCENARIOS}")
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}")
    results = {s: run_scenario(s, args.checkpoint, args.clip, args.clients, args.requests, args.time_cap)
               for s in scenarios}
    if results.get("plain", {}).get("requests_per_s"):
        for r in results.values():
            r["ratio_to_plain"] = r["requests_per_s"] / results["plain"]["requests_per_s"]
    print(json.dumps({"date": date.today().isoformat(), "checkpoint": args.checkpoint, "clip": str(args.clip),
                      "clients": args.clients, "requests": args.requests, "time_cap_s": args.time_cap,
                      "cpus": os.cpu_count(), "cpu": cpu_model(),
                      "scenarios": results}, indent=2))
    failed = [name for name, r in results.items() if r["answered_200"] < r["sent"]]
    if failed:  # a server that answers nothing must not pass for a slow one
        sys.exit(f"not every request was answered in: {', '.join(failed)} (see first_errors above)")


if __name__ == "__main__":
    main()
