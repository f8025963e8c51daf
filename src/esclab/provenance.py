"""Where a number came from: the code commit, versions, machine and command of each session of a run.

``RUN/env.json`` holds the facts of the machine and code and one entry per session (``argv``,
start, end, commit, the folds it finished). A resumed run adds a session; when its commit differs
from the one the finished folds were trained with, it says so loudly (the config is checked apart:
a different resolved config is refused).
"""

from __future__ import annotations

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
    Dirty means tracked files differ from the commit (untracked files do not count).
    """
    cwd = Path(folder) if folder else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


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
    """CPU model, cores, the torch thread count the run uses, OS and host name."""
    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": threads,
            "platform": platform.platform(), "hostname": platform.node()}


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
            warnings.append(f"the code has uncommitted changes (commit {self.session['commit']} + edits): "
                            f"the commit alone does not reproduce this run")
        self.session["warnings"] = warnings
        self.sessions.append(self.session)
        self.data.update({"commit": self.session["commit"], "dirty": self.session["dirty"],
                          "versions": self.session["versions"], "machine": self.session["machine"]})
        self._write()
        for warning in warnings:
            log.warning(warning)
        return warnings

    def fold_finished(self, fold: int) -> None:
        self.session["folds_finished"].append(int(fold))
        self._write()

    def end(self) -> None:
        self.session["end"] = now()
        self._write()

    def _write(self) -> None:
        atomic_write(self.path, json.dumps(self.data, indent=2))
