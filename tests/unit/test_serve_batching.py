"""MicroBatcher contracts: every caller gets its own result, batches fill up to max_batch, errors reach
every caller of their batch, and the batcher keeps working after an error or a close."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from esclab.serve.batching import MicroBatcher


def test_each_caller_gets_its_own_result_from_many_threads():
    batcher = MicroBatcher(lambda xs: [10 * x for x in xs], max_batch=8, max_wait_s=0.01)
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda x: batcher.submit(x).result(timeout=30), range(100)))
    batcher.close()
    assert results == [10 * x for x in range(100)]
    assert batcher.stats.items == 100 and 1 <= batcher.stats.largest <= 8
    assert batcher.stats.mean_batch == pytest.approx(100 / batcher.stats.batches)


def test_items_queued_during_a_batch_form_the_next_batches_up_to_max_batch():
    started, release, sizes = threading.Event(), threading.Event(), []

    def fn(items: list[int]) -> list[int]:
        sizes.append(len(items))
        started.set()
        release.wait(timeout=30)  # the first batch holds the worker while the others queue up
        return items

    batcher = MicroBatcher(fn, max_batch=4, max_wait_s=0.0)
    first = batcher.submit(0)
    assert started.wait(timeout=30)  # the worker has taken item 0 alone
    rest = [batcher.submit(i) for i in range(1, 10)]
    release.set()
    assert [f.result(timeout=30) for f in [first, *rest]] == list(range(10))
    batcher.close()
    assert sizes == [1, 4, 4, 1] and batcher.stats.largest == 4


def test_an_error_reaches_every_caller_of_its_batch_and_the_next_batch_still_runs():
    def fn(items: list[int]) -> list[int]:
        if -1 in items:
            raise ValueError("bad item")
        return items

    batcher = MicroBatcher(fn, max_batch=4, max_wait_s=0.5)
    futures = [batcher.submit(x) for x in (1, -1, 2)]
    for future in futures:
        with pytest.raises(ValueError, match="bad item"):
            future.result(timeout=30)
    assert batcher.submit(5).result(timeout=30) == 5
    batcher.close()


def test_a_wrong_number_of_results_is_an_error():
    batcher = MicroBatcher(lambda xs: xs[:1], max_batch=2, max_wait_s=0.5)
    futures = [batcher.submit(x) for x in (1, 2)]
    with pytest.raises(RuntimeError, match="1 results for 2 items"):
        futures[1].result(timeout=30)
    batcher.close()


def test_close_finishes_queued_items_and_a_later_submit_starts_again():
    batcher = MicroBatcher(lambda xs: [x + 1 for x in xs], max_batch=2, max_wait_s=0.0)
    futures = [batcher.submit(x) for x in range(5)]
    batcher.close()
    assert [f.result(timeout=0) for f in futures] == [1, 2, 3, 4, 5]
    assert batcher.submit(41).result(timeout=30) == 42
    batcher.close()


@pytest.mark.parametrize(("kwargs", "message"), [({"max_batch": 0}, "max_batch"), ({"max_wait_s": -1}, "max_wait_s")])
def test_bad_settings_are_refused(kwargs: dict, message: str):
    with pytest.raises(ValueError, match=message):
        MicroBatcher(lambda xs: xs, **kwargs)
