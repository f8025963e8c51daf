"""Progress and throughput of a prediction over many files, written to a stream (stderr by default).

On a terminal a tqdm bar counts clips with its rate in clips/s (as Lightning's bar does); on
anything else (a log file, a pipe, CI) it writes a plain line every ``interval_s`` seconds,
since a bar redrawn with carriage returns turns into noise there. :meth:`Throughput.close`
always writes one final line with the count, failures, time and rate.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm

from esclab.inference.results import Prediction


class Throughput:
    """Counts results as they arrive and reports clips per second.

    Args:
        total: results expected.
        unit: what one result is ("clip", or "file" for whole recordings).
        stream: where to write (default ``sys.stderr``).
        interval_s: seconds between plain lines when ``stream`` is not a terminal.
        bar: force the tqdm bar on (``True``) or off (``False``); default: when ``stream`` is a terminal.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> progress = Throughput(2, stream=out, interval_s=3600)
        >>> progress.update(Prediction("a.wav")); progress.update(Prediction("b.wav", error="bad"))
        >>> progress.close().startswith("predict: 2 clips (1 failed) in ")
        True
    """

    def __init__(self, total: int, unit: str = "clip", stream: TextIO | None = None, interval_s: float = 5.0,
                 bar: bool | None = None):
        self.total, self.unit = total, unit
        self.stream = sys.stderr if stream is None else stream
        self.interval_s = interval_s
        self.done = self.failed = 0
        self.start = self._last_line = time.perf_counter()
        if bar is None:
            bar = self.stream.isatty()
        self._bar = tqdm(total=total, unit=unit, desc="predict", file=self.stream, dynamic_ncols=True) if bar else None

    @property
    def rate(self) -> float:
        """Results per second since the start."""
        elapsed = time.perf_counter() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def update(self, result: Prediction) -> None:
        """Count one result (a failed one too)."""
        self.done += 1
        self.failed += result.error is not None
        if self._bar is not None:
            self._bar.update(1)
            return
        now = time.perf_counter()
        if now - self._last_line >= self.interval_s and self.done < self.total:
            self._last_line = now
            self._write(f"predict: {self.done}/{self.total} {self.unit}s, {self.rate:.1f} {self.unit}s/s")

    def close(self) -> str:
        """End the bar and write (and return) the final line."""
        if self._bar is not None:
            self._bar.close()
        elapsed = time.perf_counter() - self.start
        line = (f"predict: {self.done} {self.unit}s ({self.failed} failed) in {elapsed:.1f} s, "
                f"{self.rate:.1f} {self.unit}s/s")
        self._write(line)
        return line

    def _write(self, line: str) -> None:
        print(line, file=self.stream, flush=True)
