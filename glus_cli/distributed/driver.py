"""The Ray driver of `glus batch --ray`: one video per worker at a time, longest first, deaths retried.

The driver is the `glus` process. It never imports torch: it plans, hands out videos and merges the
workers' reports into the `BatchReport` a local run would have produced, in the same order, so that
`summary.json` only gains a ``ray`` block. Its loop waits on two kinds of Ray calls:

- ``run(video)`` on a busy worker: a report (the video is done, or failed inside, as locally: no retry),
  or the worker's death (the video goes back to the front of the queue, up to `MAX_ATTEMPTS` attempts);
- ``info()`` pings of starting and restarted workers: a worker takes a video only once it has answered.
  A ping that raises is the worker's constructor failing (no shared OUT, a bad checkpoint): the run stops
  with that error.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from glus_cli.batch import BatchReport, VideoFailure, VideoTask
from glus_cli.distributed.cluster import WorkerShape, connected, worker_shape
from glus_cli.distributed.dispatch import Dispatch
from glus_cli.distributed.plan import PendingVideo, longest_first
from glus_cli.distributed.shared_output import driver_lock, remove_sentinel, write_sentinel
from glus_cli.distributed.worker import FAULT_ENV, FaultPlan, GlusWorker, ProgressBoard, WorkerSpec
from glus_cli.errors import one_line

logger = logging.getLogger(__name__)

WAIT_S = 0.25
"""Longest the loop sleeps between looks at the workers."""
PING_RETRY_S = 1.0
"""Pause before pinging again a worker that could not be reached (Ray is restarting it)."""

_INFO_KEYS = ("host", "node", "device", "pid", "load_seconds")
"""What the summary keeps of each worker's `GlusWorker.info`."""

ProgressCallback = Callable[[int, int], None]
"""``(query steps done, query steps in all)`` over the pending videos."""


@dataclass
class RayRun:
    """What `run_on_ray` did.

    Attributes:
        report: the merged report, as a local `run_batch` over the same tasks would give it.
        model: the loaded model's provenance (`ModelInfo` as a dict), None if no worker was needed.
        ray: the summary's ``ray`` block: workers (host, Ray node id, device, videos, busy seconds, restarts),
            resources per worker, attempts per video.
        seconds: wall-clock stages (``connect``, ``load_model`` until the first worker answered,
            ``segment``).
    """

    report: BatchReport
    model: dict[str, Any] | None
    ray: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)


def run_on_ray(
    tasks: Sequence[VideoTask],
    spec: WorkerSpec,
    *,
    address: str,
    workers: int | None = None,
    shard: tuple[int, int] = (0, 1),
    on_progress: ProgressCallback | None = None,
    verbose: bool = False,
) -> RayRun:
    """Segment `tasks` (one shard of a planned batch) on Ray workers into ``spec.out``.

    Args:
        tasks: the shard's videos, planned as for a local run (`plan_tasks`, `select_shard`).
        spec: what each worker loads and how it runs videos (``spec.model.device`` as given by the user).
        address: ``local``, ``auto`` or a cluster address.
        workers: number of workers (default: one per GPU, or one per machine on CPUs).
        shard: (index, count) of this shard, for the driver lock.
        on_progress: called about every `WAIT_S` seconds with the query steps done and in all.
        verbose: forward the workers' logs.

    Raises:
        OutputError: another driver runs on this OUT and shard, or a worker does not see OUT.
        ResourceError: no worker is left alive.
        InputError: Ray is missing, or the device cannot be spread over the cluster.
    """
    fault = os.environ.get(FAULT_ENV)
    FaultPlan.parse(fault)  # a malformed test variable fails here, not in every worker
    out = spec.out
    with driver_lock(out, *shard):
        pending = longest_first(tasks, out, stride=spec.stride, max_frames=spec.max_frames)
        if not pending:
            logger.info("every expression is complete; no Ray worker needed")
            return RayRun(merge_reports(tasks, {}, {}), None, {"address": address, "workers": []})
        sentinel = write_sentinel(out)
        try:
            started = time.perf_counter()
            with connected(address, verbose=verbose) as ray:
                nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
                shape = worker_shape(nodes, spec.model.device, workers, len(pending))
                seconds = {"connect": round(time.perf_counter() - started, 3)}
                loop = _Loop(ray, pending, spec, shape, sentinel, fault, on_progress)
                try:
                    loop.run(seconds)
                finally:
                    loop.stop_workers()
        finally:
            remove_sentinel(out, sentinel)
    attempts = loop.dispatch.attempts
    gave_up = {
        video: f"its Ray worker died {attempts[video]} times while segmenting it (last: {reason})"
        for video, reason in loop.dispatch.gave_up.items()
    }
    report = merge_reports(tasks, loop.reports, gave_up)
    return RayRun(report, loop.model, loop.ray_block(address), seconds)


def merge_reports(
    tasks: Sequence[VideoTask], reports: dict[str, BatchReport], gave_up: dict[str, str]
) -> BatchReport:
    """One report over `tasks`, in task order, as `run_batch` over all of them would have made it.

    Args:
        tasks: every task of the shard.
        reports: the workers' one-video reports, by video (videos missing here were complete).
        gave_up: videos whose workers kept dying, with the failure line.
    """
    merged = BatchReport(videos=len(tasks), expressions=sum(len(task.expressions) for task in tasks))
    for task in tasks:
        if task.name in gave_up:
            merged.failures.append(VideoFailure(task.name, gave_up[task.name]))
        elif task.name in reports:
            report = reports[task.name]
            merged.skipped.extend(report.skipped)
            merged.outcomes.extend(report.outcomes)
            merged.failures.extend(report.failures)
        else:
            merged.skipped.extend(f"{task.name}/{exp.exp_id}" for exp in task.expressions)
    return merged


@dataclass
class _WorkerRecord:
    """What the driver learns about one worker, for the summary."""

    info: dict[str, Any] = field(default_factory=dict)
    videos: int = 0
    busy_seconds: float = 0.0
    restarts: int = 0
    busy_since: float = 0.0


class _Loop:
    """The driver's event loop over Ray calls (one instance per run)."""

    def __init__(
        self,
        ray: Any,
        pending: Sequence[PendingVideo],
        spec: WorkerSpec,
        shape: WorkerShape,
        sentinel: str,
        fault: str | None,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.ray = ray
        self.tasks = {video.task.name: video.task for video in pending}
        self.estimates = {video.task.name: video.steps for video in pending}
        self.shape = shape
        self.dispatch = Dispatch.start(self.tasks, shape.count)
        self.reports: dict[str, BatchReport] = {}
        self.model: dict[str, Any] | None = None
        self.records = [_WorkerRecord() for _ in range(shape.count)]
        self.on_progress = on_progress
        worker_spec = replace(spec, model=spec.model.on_device(shape.device))
        actor = ray.remote(GlusWorker).options(
            num_cpus=shape.num_cpus, num_gpus=shape.num_gpus, max_restarts=-1, max_task_retries=0
        )
        # The board may land on a node that dies; Ray restarts it (its counts restart from the next report).
        self.board = ray.remote(ProgressBoard).options(num_cpus=0, max_restarts=-1).remote()
        self.handles = [actor.remote(worker_spec, sentinel, fault) for _ in range(shape.count)]
        self.pings = {handle.info.remote(): worker for worker, handle in enumerate(self.handles)}
        self.runs: dict[Any, int] = {}
        self.ping_again: dict[int, float] = {}
        self.snapshot_ref = self.board.snapshot.remote()
        self.snapshot: dict[str, tuple[int, int]] = {}
        logger.info(
            "Ray: %d workers with %d CPUs and %d GPUs each, for %d videos",
            shape.count,
            shape.num_cpus,
            shape.num_gpus,
            len(pending),
        )

    def run(self, seconds: dict[str, float]) -> None:
        """Run until every video is done or given up; fill `seconds` (``load_model``, ``segment``)."""
        started = time.perf_counter()
        while not self.dispatch.finished:
            now = time.monotonic()
            for worker, video in self.dispatch.assign():
                self.runs[self.handles[worker].run.remote(self.tasks[video], self.board)] = worker
                self.records[worker].busy_since = now
            for worker in [worker for worker, at in self.ping_again.items() if at <= now]:
                del self.ping_again[worker]
                self.pings[self.handles[worker].info.remote()] = worker
            waiting = [*self.runs, *self.pings]
            ready = self.ray.wait(waiting, num_returns=1, timeout=WAIT_S)[0] if waiting else []
            if not waiting:
                time.sleep(WAIT_S)
            for ref in ready:
                if ref in self.pings:
                    self._answered(self.pings.pop(ref), ref)
                else:
                    self._returned(self.runs.pop(ref), ref)
            if "load_model" not in seconds and self.model is not None:
                seconds["load_model"] = round(time.perf_counter() - started, 3)
            self.dispatch.drop_stale(time.monotonic())
            self._show_progress()
        seconds["segment"] = round(time.perf_counter() - started - seconds.get("load_model", 0.0), 3)

    def stop_workers(self) -> None:
        """Kill the actors (a joined cluster or a reused connection outlives the run)."""
        for handle in [*self.handles, self.board]:
            self.ray.kill(handle, no_restart=True)

    def ray_block(self, address: str) -> dict[str, Any]:
        """The summary's ``ray`` block."""
        return {
            "address": address,
            "resources_per_worker": {"CPU": self.shape.num_cpus, "GPU": self.shape.num_gpus},
            "max_attempts": self.dispatch.max_attempts,
            "workers": [
                {
                    "worker": index,
                    **{key: record.info.get(key) for key in _INFO_KEYS},
                    "videos": record.videos,
                    "busy_seconds": round(record.busy_seconds, 3),
                    "restarts": record.restarts,
                }
                for index, record in enumerate(self.records)
            ],
            "attempts": dict(sorted(self.dispatch.attempts.items())),
        }

    def _answered(self, worker: int, ref: Any) -> None:
        """A ping came back: the worker is ready, still restarting, or could not start at all."""
        exceptions = self.ray.exceptions
        try:
            info = self.ray.get(ref)
        except exceptions.RayTaskError as error:  # the constructor failed: stop with its error
            raise _cause(error) from None
        except exceptions.RayActorError:  # restarting: ask again shortly, unless given up
            if worker in self.dispatch.dropped:
                return
            self.dispatch.unreachable(worker, time.monotonic())
            self.ping_again[worker] = time.monotonic() + PING_RETRY_S
            return
        self.records[worker].info = info
        if self.model is None:
            self.model = info["model"]
        logger.info("Ray worker %d ready on %s (%s)", worker, info["host"], info["device"])
        self.dispatch.ready(worker)

    def _returned(self, worker: int, ref: Any) -> None:
        """A video's call came back: its report, a failure inside it, or its worker's death."""
        exceptions = self.ray.exceptions
        record = self.records[worker]
        record.busy_seconds += time.monotonic() - record.busy_since
        try:
            report = self.ray.get(ref)
        except exceptions.RayTaskError as error:  # not a video error (run_batch keeps those): as locally
            video = self.dispatch.done(worker)
            self.reports[video] = BatchReport(failures=[VideoFailure(video, one_line(_cause(error)))])
        except (exceptions.RayActorError, exceptions.OutOfMemoryError) as error:
            record.restarts += 1
            video = self.dispatch.died(worker, type(error).__name__, time.monotonic())
            logger.warning(
                "Ray worker %d died in %s (attempt %d)", worker, video, self.dispatch.attempts[video]
            )
            self.pings[self.handles[worker].info.remote()] = worker
        else:
            video = self.dispatch.done(worker)
            self.reports[video] = report
            record.videos += 1

    def _show_progress(self) -> None:
        """Read the progress board when its last answer has come, and report the steps."""
        if self.on_progress is None:
            return
        if self.ray.wait([self.snapshot_ref], timeout=0)[0]:
            try:
                self.snapshot = self.ray.get(self.snapshot_ref)
            except self.ray.exceptions.RayActorError:  # the board's node died: keep the last figures
                logger.debug("the progress board is restarting")
            self.snapshot_ref = self.board.snapshot.remote()
        finished = set(self.reports) | set(self.dispatch.gave_up)
        done = total = 0
        for video, estimate in self.estimates.items():
            steps_done, steps = self.snapshot.get(video, (0, estimate))
            done += steps if video in finished else steps_done
            total += steps
        self.on_progress(done, total)


def _cause(error: Exception) -> Exception:
    """The exception raised inside a Ray call (Ray wraps it in a `RayTaskError`)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, Exception) else error
