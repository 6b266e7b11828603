"""The Ray driver's bookkeeping, free of Ray: which worker does which video, attempts, deaths, give-ups.

Workers are numbered ``0..n-1``. A worker is *starting* (loading the model), *idle*, *busy* with one
video, *recovering* after its process died (Ray restarts it; the driver pings it until it answers), or
*dropped* (it did not come back in time). Two rules come from a prototype that got them wrong:

- a video is handed only to a worker that has answered a ping since it (re)started, because a call sent
  to a restarting actor fails at once and would burn an attempt on a video that never ran;
- attempts are counted and capped here, not by Ray (``max_task_retries=0``): Ray's own retries hide
  worker deaths and would retry a video that kills its worker forever.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from glus_cli.errors import ResourceError

MAX_ATTEMPTS = 3
"""Times a video is started on a worker before its worker deaths make it a failed video."""
RECOVERY_TIMEOUT_S = 600.0
"""A worker that died and has not answered a ping for this long is given up (its node is likely gone)."""


@dataclass
class Dispatch:
    """Queue, attempts and worker states of one Ray batch.

    Attributes:
        queue: videos not yet handed out, in sending order (longest first); a video whose worker died
            goes back to the front.
        max_attempts: cap on `attempts` per video.
        attempts: times each video was handed to a worker.
        gave_up: videos whose workers died `max_attempts` times, with the last reason.
        starting: workers loading the model for the first time.
        idle: workers ready for a video.
        busy: worker -> the video it runs.
        recovering: worker -> when it died (monotonic seconds).
        dropped: workers given up.
    """

    queue: deque[str]
    max_attempts: int = MAX_ATTEMPTS
    attempts: dict[str, int] = field(default_factory=dict)
    gave_up: dict[str, str] = field(default_factory=dict)
    starting: set[int] = field(default_factory=set)
    idle: list[int] = field(default_factory=list)
    busy: dict[int, str] = field(default_factory=dict)
    recovering: dict[int, float] = field(default_factory=dict)
    dropped: set[int] = field(default_factory=set)

    @classmethod
    def start(cls, videos: Iterable[str], num_workers: int, max_attempts: int = MAX_ATTEMPTS) -> Dispatch:
        """Every video queued in the given order, every worker starting."""
        return cls(deque(videos), max_attempts, starting=set(range(num_workers)))

    @property
    def finished(self) -> bool:
        """No video is queued or running."""
        return not self.queue and not self.busy

    def assign(self) -> list[tuple[int, str]]:
        """Hand the queue's head videos to idle workers (counting an attempt each); return the pairs."""
        pairs = []
        while self.idle and self.queue:
            worker, video = self.idle.pop(0), self.queue.popleft()
            self.attempts[video] = self.attempts.get(video, 0) + 1
            self.busy[worker] = video
            pairs.append((worker, video))
        return pairs

    def ready(self, worker: int) -> None:
        """A starting or recovering worker answered its ping: it may take a video."""
        self.starting.discard(worker)
        self.recovering.pop(worker, None)
        if worker not in self.dropped and worker not in self.idle:
            self.idle.append(worker)

    def done(self, worker: int) -> str:
        """The worker returned a report for its video (done, or failed inside); return the video."""
        video = self.busy.pop(worker)
        self.idle.append(worker)
        return video

    def died(self, worker: int, reason: str, now: float) -> str:
        """The busy worker's process died: re-queue its video at the front, or give it up after
        `max_attempts`; the worker recovers. Return the video."""
        video = self.busy.pop(worker)
        if self.attempts[video] < self.max_attempts:
            self.queue.appendleft(video)
        else:
            self.gave_up[video] = reason
        self.recovering[worker] = now
        return video

    def unreachable(self, worker: int, now: float) -> None:
        """A ping could not reach the worker (Ray is restarting it): it is recovering from now on."""
        self.starting.discard(worker)
        self.recovering.setdefault(worker, now)

    def drop_stale(self, now: float, timeout: float = RECOVERY_TIMEOUT_S) -> list[int]:
        """Give up the workers that have been recovering longer than `timeout`; return them.

        Raises:
            ResourceError: work remains and no worker is left that could do it.
        """
        stale = [worker for worker, since in self.recovering.items() if now - since > timeout]
        for worker in stale:
            del self.recovering[worker]
            self.dropped.add(worker)
        if not self.finished and not (self.starting or self.idle or self.busy or self.recovering):
            raise ResourceError(
                f"no Ray worker is left: {len(self.dropped)} died and did not come back within "
                f"{timeout:.0f} s; finished videos are kept, rerun the same command to resume"
            )
        return stale
