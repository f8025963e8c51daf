"""Progress of long loops: a tqdm bar on a terminal, plain log lines everywhere else.

A job whose stderr goes to a file or a pipe (a batch system, ``nohup``, CI) would otherwise get
either nothing or a log full of carriage returns. :class:`Progress` draws tqdm's bar on stderr
when stderr is a terminal and otherwise logs one INFO line on the ``esclab`` logger (which the
command line prints to stderr) every ``every_frac`` of the work or ``every_s`` seconds:
``features: 400/2000 (20 %) · 95.1/s · 4s elapsed, ETA 17s``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

log = logging.getLogger("esclab.progress")

T = TypeVar("T")


def format_duration(seconds: float) -> str:
    """``7`` -> ``7s``, ``130`` -> ``2m10s``, ``3900`` -> ``1h05m`` (rounded to whole seconds)."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def eta_seconds(done: int, total: int, elapsed: float) -> float | None:
    """Time left at the average rate so far; ``None`` before anything is done."""
    if done <= 0:
        return None
    return elapsed / done * max(0, total - done)


def progress_line(desc: str, done: int, total: int | None, elapsed: float) -> str:
    """``desc: done/total (pct %) · rate/s · elapsed, ETA`` (only what is known without ``total``)."""
    rate = f"{done / elapsed:.1f}/s" if elapsed > 0 else "-/s"
    if not total:
        return f"{desc}: {done} · {rate} · {format_duration(elapsed)} elapsed"
    eta = eta_seconds(done, total, elapsed)
    eta_text = format_duration(eta) if eta is not None else "?"
    return (f"{desc}: {done}/{total} ({100 * done / total:.0f} %) · {rate} · "
            f"{format_duration(elapsed)} elapsed, ETA {eta_text}")


def stderr_is_terminal() -> bool:
    """Whether stderr is an interactive terminal (where a redrawn bar is readable)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


class Progress:
    """Counts finished items of ``total``; a tqdm bar on a terminal, log lines otherwise.

    Args:
        total: items expected (``None``: unknown).
        desc: what is counted, starts every line.
        enabled: ``False`` shows nothing.
        every_frac: log a line each time this fraction of ``total`` more is done.
        every_s: ... or when this many seconds passed since the last line.
        unit: what one item is, for the bar's rate (``clip/s``).
    """

    def __init__(self, total: int | None, desc: str, enabled: bool = True, every_frac: float = 0.1,
                 every_s: float = 30.0, unit: str = "it"):
        self.total, self.desc, self.done = total, desc, 0
        self.every_s = every_s
        self.step = max(1, int(total * every_frac)) if total else None
        self._start = self._last_time = time.perf_counter()
        self._last_done = 0
        self._bar = None
        self._lines = enabled and not stderr_is_terminal()
        if enabled and not self._lines:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, leave=False, file=sys.stderr, unit=unit)

    @property
    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self._start

    @property
    def rate(self) -> float:
        """Items per second since the start."""
        elapsed = self.elapsed
        return self.done / elapsed if elapsed > 0 else 0.0

    def update(self, n: int = 1) -> None:
        """Record ``n`` more finished items."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        if not self._lines:
            return
        now = time.perf_counter()
        finished = self.total is not None and self.done >= self.total
        due = (self.step is not None and self.done - self._last_done >= self.step) or now - self._last_time >= self.every_s
        if (due or finished) and self.done > self._last_done:
            log.info(progress_line(self.desc, self.done, self.total, now - self._start))
            self._last_time, self._last_done = now, self.done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(iterable: Iterable[T], total: int | None = None, desc: str = "", enabled: bool = True) -> Iterator[T]:
    """Yield the items of ``iterable`` while :class:`Progress` reports them (``total`` from ``len`` if it has one)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with Progress(total, desc, enabled) as progress:
        for item in iterable:
            yield item
            progress.update()
