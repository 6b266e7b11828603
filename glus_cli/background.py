"""Background threads that overlap host work with the model: an ordered prefetcher and an ordered worker.

On a GPU the main thread should only launch kernels; decoding and preprocessing the next frame, and
encoding and writing masks, are host work that can run meanwhile (PIL, OpenCV, zlib and torch's CPU
kernels release the GIL). Both helpers here:

- keep order: one thread each, items handled in the order they were given;
- are bounded: a small queue, so at most a few frames are ahead of the consumer;
- hand an exception raised on the thread to the main thread as the same exception object, so a
  `GlusError` keeps its one-line message and exit code;
- stop cleanly when the main thread stops early (a generator closed, an error, Ctrl-C): the thread
  finishes the item it is working on and ends; nothing more is started.

`prefetched` and `ordered_worker` take `threaded=False` for the same work done in the calling thread,
at the moment it is asked for (the results are the same; only when the work happens differs).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

PREFETCH_DEPTH = 2
"""Items a `Prefetcher` may hold ready ahead of its consumer."""
WORKER_DEPTH = 16
"""Calls an `OrderedWorker` may hold queued before `submit` waits."""

_END = object()
"""Queue marker: no more items."""


class Prefetcher(Generic[Item, Result]):
    """An iterator over `make(item)` for `items` in order, computed on a thread ahead of the consumer.

    Args:
        items: what to make, in order (iterated on the thread).
        make: the work for one item.
        depth: results held ready at most (the thread waits when the queue is full).
        name: the thread's name.
    """

    def __init__(
        self,
        items: Iterable[Item],
        make: Callable[[Item], Result],
        depth: int = PREFETCH_DEPTH,
        name: str = "glus-prefetch",
    ) -> None:
        self._queue: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(items, make), name=name, daemon=True)
        self._thread.start()

    def _produce(self, items: Iterable[Item], make: Callable[[Item], Result]) -> None:
        try:
            for item in items:
                if self._stop.is_set():
                    return
                self._queue.put((True, make(item)))
        except BaseException as error:  # handed to the consumer, which re-raises it
            self._queue.put((False, error))
            return
        self._queue.put((True, _END))

    def __iter__(self) -> Iterator[Result]:
        return self

    def __next__(self) -> Result:
        if self._stop.is_set():
            raise StopIteration
        succeeded, value = self._queue.get()
        if not succeeded:
            self.close()
            raise value  # type: ignore[misc]
        if value is _END:
            self.close()
            raise StopIteration
        return value  # type: ignore[return-value]

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread.is_alive()

    def close(self) -> None:
        """Stop the thread after the item it is making, drop what it made, and wait for it to end."""
        self._stop.set()
        while self._thread.is_alive():
            self._drain()  # a thread blocked on a full queue can then put its item and see the stop
            self._thread.join(timeout=0.01)
        self._drain()

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass


@contextmanager
def prefetched(
    items: Iterable[Item], make: Callable[[Item], Result], *, threaded: bool, depth: int = PREFETCH_DEPTH
) -> Iterator[Iterator[Result]]:
    """`make(item)` for each item in order: computed ahead on a thread, or on demand when not `threaded`.

    The thread is stopped when the block is left, however it is left.
    """
    if not threaded:
        yield map(make, items)
        return
    prefetcher = Prefetcher(items, make, depth)
    try:
        yield prefetcher
    finally:
        prefetcher.close()


class OrderedWorker:
    """Runs submitted calls one after another on a thread, in the order they were submitted.

    The first call that raises stops the work: later calls are skipped, and the exception is raised in
    the submitting thread by the next `submit` or by `finish`.

    Args:
        depth: calls queued at most (`submit` waits when the queue is full).
        name: the thread's name.
    """

    def __init__(self, depth: int = WORKER_DEPTH, name: str = "glus-writer") -> None:
        self._queue: queue.Queue[tuple[Callable[..., object], tuple[object, ...]] | None] = queue.Queue(
            maxsize=depth
        )
        self._error: BaseException | None = None
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (call := self._queue.get()) is not None:
            if self._error is not None or self._cancelled.is_set():
                continue  # keep draining so that `submit` never waits on a dead worker
            function, args = call
            try:
                function(*args)
            except BaseException as error:  # raised again in the submitting thread
                self._error = error

    def submit(self, function: Callable[..., object], *args: object) -> None:
        """Queue `function(*args)`; raises the exception of an earlier call, if one failed."""
        self._raise_error()
        self._queue.put((function, args))

    def finish(self) -> None:
        """Wait until every queued call has run; raises the exception of a call that failed."""
        self._stop()
        self._raise_error()

    def cancel(self) -> None:
        """Skip the calls not yet started and wait for the one running, if any."""
        self._cancelled.set()
        self._stop()

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error


class _InlineWorker:
    """`OrderedWorker`'s interface, running each call at once in the calling thread."""

    def submit(self, function: Callable[..., object], *args: object) -> None:
        function(*args)


@contextmanager
def ordered_worker(*, threaded: bool, depth: int = WORKER_DEPTH) -> Iterator[OrderedWorker | _InlineWorker]:
    """A worker for ordered calls: a thread (`OrderedWorker`), or the calling thread when not `threaded`.

    Leaving the block normally waits for every queued call and raises the first failure; leaving it by
    an exception skips the calls not yet started.
    """
    if not threaded:
        yield _InlineWorker()
        return
    worker = OrderedWorker(depth)
    try:
        yield worker
    except BaseException:
        worker.cancel()
        raise
    worker.finish()
