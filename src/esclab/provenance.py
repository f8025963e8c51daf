"""Where a number came from: the code commit, versions, machine and command of each session of a run.

``RUN/env.json`` holds the facts of the machine and code and one entry per session (``argv``,
start, end, commit, the folds it finished). A resumed run adds a session; when its commit differs
from the one the finished folds were trained with, it says so loudly (the config is checked apart:
a different resolved config is refused).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import platform
import subprocess
import sys
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from esclab import __version__
from esclab.fsutil import atomic_write

log = logging.getLogger(__name__)

PACKAGES = ("torch", "lightning", "numpy", "scikit-learn", "librosa", "timm", "onnxruntime")


def git_state(folder: str | Path | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the git checkout holding ``folder``.

    ``folder`` defaults to this package's source; an installed copy outside git gives ``None`` for both.
    Dirty means tracked files differ from the commit or untracked files are present outside the ignored
    paths (``runs/``, caches, ...: ``.gitignore``); ``untracked`` counts the latter.
    """
    cwd = Path(folder) if folder else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return {"commit": None, "dirty": None, "untracked": None}
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=cwd,
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "untracked": None}
    lines = status.stdout.splitlines()
    return {"commit": commit.stdout.strip(), "dirty": bool(lines),
            "untracked": sum(line.startswith("??") for line in lines)}


def read_cpuinfo() -> str:
    """``/proc/cpuinfo`` as text (empty where there is none, off Linux)."""
    path = Path("/proc/cpuinfo")
    return path.read_text(errors="replace") if path.is_file() else ""


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    for line in read_cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


#: The CPU flags that change how fast (and at which precision) training runs.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_flags() -> list[str]:
    """Those of :data:`SPEED_FLAGS` the CPU has (``/proc/cpuinfo``; empty off Linux)."""
    for line in read_cpuinfo().splitlines():
        if line.startswith("flags"):
            have = set(line.split(":", 1)[1].split())
            return [flag for flag in SPEED_FLAGS if flag in have]
    return []


def cpu_capability() -> str | None:
    """torch's ``get_cpu_capability()`` (``DEFAULT``, ``AVX2``, ``AVX512``, ...), the kernels it dispatches to."""
    try:
        import torch

        return str(torch.backends.cpu.get_cpu_capability())
    except (ImportError, AttributeError):
        return None


def source_fingerprint(*modules: str) -> str:
    """A short hash of the source files of ``modules`` (``esclab.features.functional``, or a package: all
    its ``.py`` files): the key of a cache whose numbers that code computes, so a change to it is never
    answered from the cache."""
    digest = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            raise ValueError(f"no source for module {name!r}")
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        for path in files:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def dataset_facts(paths: list[str], metadata: Path | None, rates: dict[str, int] | None = None) -> dict[str, Any]:
    """Which data a run read, so a run on one copy can be told from one on another.

    ``meta_sha256``: of the metadata file (ESC-50's ``meta/esc50.csv``, a folder's CSV); ``files_sha256``: of
    the sorted list of the clips' file names and sizes (a re-encoded copy differs); ``sample_rates``: how many
    clips are stored at each rate.
    """
    listing = sorted(f"{Path(p).name}\t{Path(p).stat().st_size if Path(p).is_file() else -1}" for p in paths)
    counts: dict[str, int] = {}
    for rate in (rates or {}).values():
        counts[str(rate)] = counts.get(str(rate), 0) + 1
    return {"metadata": str(metadata) if metadata else None,
            "meta_sha256": hashlib.sha256(metadata.read_bytes()).hexdigest() if metadata and metadata.is_file() else None,
            "n_files": len(paths), "files_sha256": sha256_text("\n".join(listing)),
            "sample_rates": dict(sorted(counts.items()))}


def versions() -> dict[str, str | None]:
    """esclab, Python and the installed versions of the packages a result depends on (``None``: absent)."""
    found: dict[str, str | None] = {"esclab": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def machine(threads: int) -> dict[str, Any]:
    """CPU model, its speed flags (:data:`SPEED_FLAGS`) and torch's CPU capability, cores, the torch thread
    count the run uses, OS and host name."""
    return {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "cpu_capability": cpu_capability(),
            "cpu_count": os.cpu_count(), "torch_threads": threads, "platform": platform.platform(),
            "hostname": platform.node()}


def now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


class RunProvenance:
    """``RUN/env.json``: opened at the start of a session, closed (end time, folds done) at its end."""

    def __init__(self, path: Path, threads: int, argv: list[str] | None = None):
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {"sessions": []}
        self.session = {"argv": list(sys.argv if argv is None else argv), "start": now(), "end": None,
                        **git_state(), "versions": versions(), "machine": machine(threads), "folds_finished": []}

    @property
    def sessions(self) -> list[dict[str, Any]]:
        return self.data["sessions"]

    def start(self) -> list[str]:
        """Record the session; returns warnings (a commit or dirty tree unlike the earlier sessions')."""
        warnings = []
        earlier = [s for s in self.sessions if s.get("folds_finished")]
        commits = {s.get("commit") for s in earlier}
        if earlier and commits != {self.session["commit"]}:
            warnings.append(f"this run's finished folds were trained at commit(s) {sorted(map(str, commits))}; "
                            f"this session runs {self.session['commit']}: the folds may not be comparable")
        if self.session["dirty"]:
            untracked = f", {self.session['untracked']} untracked file(s)" if self.session.get("untracked") else ""
            warnings.append(f"the code has uncommitted changes (commit {self.session['commit']} + edits{untracked}): "
                            f"the commit alone does not reproduce this run")
        self.session["warnings"] = warnings
        self.sessions.append(self.session)
        self.data.update({"commit": self.session["commit"], "dirty": self.session["dirty"],
                          "versions": self.session["versions"], "machine": self.session["machine"]})
        self._write()
        for warning in warnings:
            log.warning(warning)
        return warnings

    def record_data(self, facts: dict[str, Any]) -> None:
        """This session's data (:func:`dataset_facts`)."""
        self.session["data"] = facts
        self._write()

    def fold_finished(self, fold: int, precision: str | None = None) -> None:
        """A fold done in this session, and the precision it actually ran at."""
        self.session["folds_finished"].append(int(fold))
        if precision is not None:
            self.session.setdefault("fold_precision", {})[str(fold)] = precision
        self._write()

    def end(self) -> None:
        self.session["end"] = now()
        self._write()

    def _write(self) -> None:
        atomic_write(self.path, json.dumps(self.data, indent=2))
