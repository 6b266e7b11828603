"""The background threads (`glus_cli.background`): order, bounded queues, errors, early stops."""

from __future__ import annotations

import threading
import time

import pytest

from glus_cli.background import OrderedWorker, Prefetcher, ordered_worker, prefetched
from glus_cli.errors import InputError, OutputError


def _wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.005)


@pytest.mark.parametrize("threaded", [True, False])
def test_prefetched_keeps_order(threaded: bool) -> None:
    with prefetched(range(50), lambda x: x * x, threaded=threaded) as squares:
        assert list(squares) == [x * x for x in range(50)]


def test_prefetcher_runs_on_its_thread_and_stays_at_most_depth_ahead() -> None:
    made: list[int] = []
    threads: set[str] = set()

    def make(item: int) -> int:
        made.append(item)
        threads.add(threading.current_thread().name)
        return item

    prefetcher = Prefetcher(range(100), make, depth=2)
    try:
        assert next(prefetcher) == 0
        # The consumer holds 0; two are queued and the thread blocks while putting the next one.
        _wait_until(lambda: len(made) == 4)
        time.sleep(0.05)
        assert len(made) == 4
        assert threads == {"glus-prefetch"}
    finally:
        prefetcher.close()
    assert not prefetcher.running


def test_prefetcher_raises_the_threads_exception_in_the_consumer_in_order() -> None:
    error = InputError("frame 3 is 10×10, but earlier frames are 20×20")

    def make(item: int) -> int:
        if item == 3:
            raise error
        return item

    with prefetched(range(10), make, threaded=True) as made:
        taken = [next(made) for _ in range(3)]
        with pytest.raises(InputError) as raised:
            next(made)
    assert taken == [0, 1, 2]
    assert raised.value is error  # the same object: its message and exit code reach the CLI


@pytest.mark.parametrize("how", ["generator closed", "consumer error", "KeyboardInterrupt"])
def test_prefetch_thread_stops_when_the_consumer_stops_early(how: str) -> None:
    made: list[int] = []
    seen: list[Prefetcher] = []

    def frames():
        with prefetched(range(10_000), lambda x: made.append(x) or x, threaded=True) as items:
            seen.append(items)
            for item in items:
                yield item
                if item == 2 and how != "generator closed":
                    raise RuntimeError("model failed") if how == "consumer error" else KeyboardInterrupt

    generator = frames()
    if how == "generator closed":
        assert [next(generator) for _ in range(3)] == [0, 1, 2]
        generator.close()
    else:
        with pytest.raises((RuntimeError, KeyboardInterrupt)):
            list(generator)
    assert not seen[0].running
    assert len(made) < 10  # nothing was made after the stop


def test_ordered_worker_runs_calls_in_order_on_its_thread() -> None:
    calls: list[tuple[int, str]] = []
    with ordered_worker(threaded=True) as worker:
        for index in range(100):
            worker.submit(lambda i: calls.append((i, threading.current_thread().name)), index)
    assert [index for index, _ in calls] == list(range(100))
    assert {name for _, name in calls} == {"glus-writer"}


def test_inline_worker_runs_each_call_at_once() -> None:
    calls: list[int] = []
    with ordered_worker(threaded=False) as worker:
        worker.submit(calls.append, 1)
        assert calls == [1]


def test_ordered_worker_error_surfaces_in_the_caller_and_skips_later_calls() -> None:
    error = OutputError("no space left on the disk to write out/00003.png")
    calls: list[int] = []

    def write(index: int) -> None:
        if index == 3:
            raise error
        calls.append(index)

    worker = OrderedWorker()
    for index in range(6):
        worker.submit(write, index)
    with pytest.raises(OutputError) as raised:
        worker.finish()
    assert raised.value is error
    assert calls == [0, 1, 2]  # 4 and 5 were skipped once 3 failed
    with pytest.raises(OutputError):
        worker.submit(write, 6)


def test_ordered_worker_block_left_by_an_exception_skips_pending_calls() -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow(index: int) -> None:
        started.set()
        release.wait(5)
        calls.append(index)

    with pytest.raises(RuntimeError, match="model failed"), ordered_worker(threaded=True) as worker:
        worker.submit(slow, 0)
        worker.submit(slow, 1)
        started.wait(5)
        # Let call 0 finish only after the block was left (leaving it cancels, then waits for call 0).
        threading.Timer(0.3, release.set).start()
        raise RuntimeError("model failed")
    assert calls == [0]  # the running call finished; the queued one never started
