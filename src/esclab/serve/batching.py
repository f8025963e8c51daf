"""Micro-batching: items submitted from many threads go through one function in batches.

Concurrent web requests each bring one clip; a forward pass over a small batch costs less per
clip than passes over one clip at a time (the paper CNN on an EPYC core: 8.6 ms per clip in a
batch of 8 against 10.9 ms alone; see benchmarks/RESULTS.md, issue 18).
:class:`MicroBatcher` owns one worker thread: it waits for a first item, then collects more
for up to ``max_wait_s`` or until it holds ``max_batch``, calls ``fn`` once, and hands each
caller its own result through a :class:`concurrent.futures.Future`. While a batch runs, new
requests queue up and form the next batch, so under load batches fill without waiting and a
lone request waits at most ``max_wait_s``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

_STOP = object()


@dataclass
class BatchStats:
    """What the batcher has done: batches run, items through them, the largest batch."""

    batches: int = 0
    items: int = 0
    largest: int = 0

    @property
    def mean_batch(self) -> float:
        return self.items / self.batches if self.batches else 0.0


class MicroBatcher:
    """Runs ``fn(items) -> results`` (one result per item, in order) over batches of submitted items.

    Args:
        fn: the batched function; it runs on the batcher's own thread only, so it needs no lock
            against itself. An exception it raises goes to every caller of that batch.
        max_batch: most items per call.
        max_wait_s: longest a batch waits for more items after its first one.

    Raises:
        ValueError: ``max_batch`` < 1 or ``max_wait_s`` < 0.

    Example:
        >>> batcher = MicroBatcher(lambda xs: [2 * x for x in xs], max_batch=4)
        >>> batcher.submit(21).result()
        42
        >>> batcher.close()
    """

    def __init__(self, fn: Callable[[list[Any]], Sequence[Any]], max_batch: int = 16, max_wait_s: float = 0.005):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.stats = BatchStats()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, item: Any) -> Future:
        """Queue one item; the future holds its result (or the batch's exception)."""
        future: Future = Future()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="esclab-batcher", daemon=True)
                self._thread.start()
            self._queue.put((item, future))
        return future

    def close(self) -> None:
        """Finish the queued items and stop the worker thread (a later :meth:`submit` starts a new one)."""
        with self._lock:  # held until the thread ends, so a new one never runs beside it
            if self._thread is not None:
                self._queue.put(_STOP)
                self._thread.join()
                self._thread = None

    def _collect(self, first: tuple) -> tuple[list[tuple], bool]:
        """The first item and whatever else arrives within ``max_wait_s``; also whether to stop after it."""
        batch, deadline = [first], time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                entry = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if entry is _STOP:
                return batch, True
            batch.append(entry)
        return batch, False

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stop = self._collect(first)
            items, futures = [item for item, _ in batch], [future for _, future in batch]
            try:
                results = self.fn(items)
                if len(results) != len(items):
                    raise RuntimeError(f"the batched function gave {len(results)} results for {len(items)} items")
            except BaseException as err:  # every caller of the batch learns why
                for future in futures:
                    future.set_exception(err)
                continue
            self.stats.batches += 1
            self.stats.items += len(items)
            self.stats.largest = max(self.stats.largest, len(items))
            for future, result in zip(futures, results, strict=True):
                future.set_result(result)
