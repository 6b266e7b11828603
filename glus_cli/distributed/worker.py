"""The Ray side of `glus batch --ray`: the worker actor, the progress board it feeds, a test-only fault.

`GlusWorker` is a plain class; the driver wraps it with `ray.remote`, so this module imports neither Ray
nor torch until a worker process constructs it. A worker loads the model once, then runs each video it is
handed through `glus_cli.batch.run_batch`, the function local `glus batch` runs: there is no second code
path, and a video's outputs on a worker are those of a local run on the same device and software.

Constructor arguments are small values passed inline (a `WorkerSpec` of frozen dataclasses, strings): Ray
keeps them to re-run the constructor when it restarts a dead worker, and arguments it had put in its
object store may be gone by then (ray-project/ray#53727). The progress board's handle therefore comes
with each `run` call instead.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glus_cli.batch import BatchHooks, BatchReport, VideoTask, run_batch
from glus_cli.distributed.shared_output import check_sentinel
from glus_cli.errors import InputError
from glus_cli.keyframe_files import keyframe_lookup
from glus_cli.model_spec import ModelSpec
from glus_cli.protocol import SegmentationOptions, Workload, num_query_steps
from glus_cli.video import DEFAULT_FPS

if TYPE_CHECKING:
    from glus_cli.runner import Expression
    from glus_cli.video import VideoSource

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.5
"""A worker sends its query-step count to the progress board at most this often."""
FAULT_ENV = "GLUS_TEST_DIE_AT"
"""Test-only: see `FaultPlan`."""


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to run videos exactly as local `glus batch` does.

    Attributes:
        model: the model to load, as a local run loads it (its device set per worker by the driver).
        options: protocol settings.
        formats: output formats.
        stride: keep every `stride`-th frame.
        max_frames: keep at most this many frames.
        keyframes: key-frame score file (each worker reads it), or None.
        out: the output root, the same path on every node.
        folder_fps: frame rate of the videos that are folders of frames.
    """

    model: ModelSpec
    options: SegmentationOptions
    formats: tuple[str, ...]
    stride: int
    max_frames: int | None
    keyframes: Path | None
    out: Path
    folder_fps: float = DEFAULT_FPS


@dataclass(frozen=True)
class FaultPlan:
    """Test-only worker deaths, from ``GLUS_TEST_DIE_AT="<video>:<step>[:always][,...]"``.

    The worker process exits at once (`os._exit`, as if killed) after query step `<step>` (1-based,
    counting every expression's steps) of `<video>`: on the first attempt only (a marker file in OUT
    remembers the death), or on every attempt with ``always``. Unset, nothing happens.
    """

    deaths: dict[str, tuple[int, bool]]

    @classmethod
    def parse(cls, text: str | None) -> FaultPlan:
        """Parse the variable's value (None or empty: no deaths).

        Raises:
            InputError: malformed.
        """
        deaths = {}
        for item in filter(None, (text or "").split(",")):
            video, _, rest = item.partition(":")
            step, _, mode = rest.partition(":")
            if not video or not step.isdigit() or int(step) < 1 or mode not in ("", "always"):
                raise InputError(f"{FAULT_ENV} must be <video>:<step>[:always][,...], got {item!r}")
            deaths[video] = (int(step), mode == "always")
        return cls(deaths)

    def after_step(self, out: Path, video: str, step: int) -> None:
        """Exit the process if this step of this video is planned to kill the worker."""
        planned = self.deaths.get(video)
        if planned is None or planned[0] != step:
            return
        if not planned[1]:
            try:
                (out / f".glus-test-died.{video}").touch(exist_ok=False)
            except FileExistsError:  # died here once already
                return
        logger.warning("test fault: the worker dies in %s after step %d", video, step)
        os._exit(1)


class ProgressBoard:
    """Query steps done per video, fed by the workers, read by the driver (a Ray actor with no CPU)."""

    def __init__(self) -> None:
        self._videos: dict[str, list[int]] = {}

    def start(self, video: str, total: int) -> None:
        """A worker opened `video`, which takes `total` query steps (an attempt restarts at 0)."""
        self._videos[video] = [0, total]

    def advance(self, video: str, steps: int) -> None:
        """`steps` more query steps of `video` are done."""
        self._videos[video][0] += steps

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """video -> (steps done, steps in all), for the videos opened so far."""
        return {video: (done, total) for video, (done, total) in self._videos.items()}


class GlusWorker:
    """One model on one device (a GPU, or some CPUs) that segments the videos it is handed."""

    def __init__(self, spec: WorkerSpec, sentinel: str, fault: str | None = None) -> None:
        """Check that OUT is the driver's, then what the driver could not check without torch (the device,
        the weights, the memory for the run's real `--llm-batch-size`), then load the model.

        Errors are kept and raised by `info`, which the driver calls first: Ray reports a failed
        constructor as a dead actor and loses the error's class, and the CLI wants the class (the exit
        code) and its one-line message.
        """
        self._spec = spec
        self._out = spec.out
        self._error: Exception | None = None
        started = time.perf_counter()
        try:
            self._fault = FaultPlan.parse(fault)
            check_sentinel(self._out, sentinel)
            self._keyframes = keyframe_lookup(spec.keyframes)
            self._model = spec.model.load(Workload.of_run(spec.options))
        except Exception as error:  # raised again by `info`
            self._error = error
        self._load_seconds = round(time.perf_counter() - started, 3)

    def info(self) -> dict[str, Any]:
        """Where this worker runs (host and Ray node id) and what it loaded (the driver's ping).

        Raises:
            Exception: whatever stopped the constructor (a `GlusError` for the user's mistakes).
        """
        if self._error is not None:
            raise self._error
        device = self._model.device
        if device.type == "cuda":
            import torch

            device_name = torch.cuda.get_device_name(device)
        else:
            device_name = device.type
        import ray

        return {
            "host": socket.gethostname(),
            "node": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "device": device_name,
            "load_seconds": self._load_seconds,
            "model": asdict(self._model.info),
        }

    def run(self, task: VideoTask, board: Any) -> BatchReport:
        """Segment the pending expressions of one video into OUT, as local `glus batch` does.

        Args:
            task: the video and all its expressions (finished ones are skipped, as locally).
            board: the `ProgressBoard` actor handle.

        Returns:
            `run_batch`'s report for this one video (a failure inside the video is listed in it).
        """
        if self._error is not None:
            raise self._error
        return run_batch(
            self._model,
            [task],
            self._out,
            self._spec.formats,
            self._spec.options,
            stride=self._spec.stride,
            max_frames=self._spec.max_frames,
            folder_fps=self._spec.folder_fps,
            keyframe_for=self._keyframes,
            hooks=BatchHooks(on_video=self._reporter(board)),
        )

    def _reporter(
        self, board: Any
    ) -> Callable[[VideoTask, VideoSource, list[Expression]], Callable[[int], None]]:
        """`BatchHooks.on_video`: announce the video's steps to `board`, then count its steps in batches."""

        def on_video(task: VideoTask, video: VideoSource, jobs: list[Expression]) -> Callable[[int], None]:
            board.start.remote(
                task.name, sum(num_query_steps(video.num_frames, job.keyframe) for job in jobs)
            )
            state = {"steps": 0, "unsent": 0, "sent_at": time.monotonic()}

            def on_step(_job: int) -> None:
                state["steps"] += 1
                state["unsent"] += 1
                self._fault.after_step(self._out, task.name, state["steps"])
                if time.monotonic() - state["sent_at"] >= PROGRESS_INTERVAL_S:
                    board.advance.remote(task.name, state["unsent"])
                    state["unsent"], state["sent_at"] = 0, time.monotonic()

            return on_step

        return on_video
