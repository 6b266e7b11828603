"""Run GLUS over one video for one or more expressions and write every requested output format.

Shared by `glus segment` and `glus batch`: frames are decoded once per video and shared by all of its
expressions (see `pipeline.segment_video`); each expression's outputs go to its own folder and are
closed atomically, followed by its `preview.jpg` contact sheet and its `confidence.json` (SAM2's predicted
IoU and object score of every frame, `glus_cli.confidence`), whatever the formats. An expression's folder
is complete when its `expression.json` record exists (`glus_cli.resume`): that file is written last, after
every mask file, the preview and the confidence, so a run killed at any moment never leaves a folder that
looks finished.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack, closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from glus_cli.background import ordered_worker
from glus_cli.confidence import CONFIDENCE_NAME, FrameConfidence
from glus_cli.files import write_json_atomic
from glus_cli.outputs import open_writers
from glus_cli.preview import PREVIEW_FILENAME, PreviewSheet
from glus_cli.resume import RECORD_NAME

if TYPE_CHECKING:
    from glus_cli.model.glus import GlusModel
    from glus_cli.protocol import FrameResult, SegmentationOptions
    from glus_cli.video import VideoSource

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Expression:
    """One expression to segment in a video.

    Attributes:
        exp_id: names the output folder (e.g. "0", or a dataset's exp_id).
        text: the referring expression as the user wrote it.
        keyframe: optional key-frame index (forward + backward passes from it).
    """

    exp_id: str
    text: str
    keyframe: int | None = None


@dataclass
class ExpressionOutcome:
    """What one expression produced (also the content of its `expression.json`)."""

    exp_id: str
    text: str
    output_dir: str
    keyframe: int | None
    num_frames: int
    frames_without_seg: list[str] = field(default_factory=list)
    mean_predicted_iou: float | None = None
    seconds: float = 0.0
    """Measured wall-clock seconds of this expression's frames (`ExpressionClock`) and of its preview and
    record; a frame's time is split evenly between the expressions segmented at it together."""
    overlay: dict[str, str] | None = None
    """The overlay video's ``file``, ``codec`` and ``container`` (None: no overlay asked for)."""


class ExpressionClock:
    """Wall-clock seconds per expression of a run whose expressions advance together, frame by frame.

    Each result is charged the time since the previous one: the engine's work to produce it, and the
    writing queued for it. The expressions answered at one frame share its decoding, CLIP features and
    SAM2 image features (and, on a GPU, one LLM forward), which cannot be told apart, so the time of
    each run of consecutive results at one frame is split evenly between them. Expressions that run
    alone (the `reference` schedule, or one expression) are measured exactly.
    """

    def __init__(self, num_expressions: int) -> None:
        self.seconds = [0.0] * num_expressions
        self._frame: tuple[int, str] | None = None
        self._members: list[int] = []
        self._elapsed = 0.0
        self._last = time.perf_counter()

    def charge(self, frame: tuple[int, str], expression_index: int) -> None:
        """Charge the time since the last call to the result of `expression_index` at `frame`."""
        now = time.perf_counter()
        if frame != self._frame:
            self._settle()
            self._frame = frame
        self._members.append(expression_index)
        self._elapsed += now - self._last
        self._last = now

    def add(self, expression_index: int, seconds: float) -> None:
        """Charge `seconds` of work done for one expression alone."""
        self.seconds[expression_index] += seconds

    def totals(self) -> list[float]:
        """Seconds per expression, rounded to the millisecond."""
        self._settle()
        return [round(seconds, 3) for seconds in self.seconds]

    def _settle(self) -> None:
        for member in self._members:
            self.seconds[member] += self._elapsed / len(self._members)
        self._members, self._elapsed = [], 0.0


class _TimedExit(AbstractContextManager[T]):
    """A context manager that tells `record` how many seconds leaving `manager` took."""

    def __init__(self, manager: AbstractContextManager[T], record: Callable[[float], None]) -> None:
        self._manager = manager
        self._record = record

    def __enter__(self) -> T:
        return self._manager.__enter__()

    def __exit__(self, *exc_info: Any) -> bool | None:
        started = time.perf_counter()
        try:
            return self._manager.__exit__(*exc_info)
        finally:
            self._record(time.perf_counter() - started)


def segment_to_outputs(
    model: GlusModel,
    video: VideoSource,
    jobs: Sequence[Expression],
    output_dirs: Sequence[Path],
    formats: Sequence[str],
    options: SegmentationOptions,
    *,
    on_step: Callable[[int], None] | None = None,
    on_result: Callable[[FrameResult], None] | None = None,
) -> list[ExpressionOutcome]:
    """Segment `jobs` in `video`, writing `formats` into `output_dirs[i]` for job i.

    Args:
        model: the loaded GLUS model.
        video: the frames (decoded once, shared by every job).
        jobs: the expressions.
        output_dirs: one folder per job (created; must not hold a finished record).
        formats: output formats (see `glus_cli.outputs.FORMATS`).
        options: protocol settings.
        on_step: called with the job index after each query frame, for progress bars.
        on_result: called with every `FrameResult` once its mask is queued for writing (e.g. to keep
            SAM2's per-frame confidence, as `glus keyframes` does).

    Returns:
        One outcome per job, in order. Each job's `expression.json` is written once its masks and its
        `preview.jpg` are.

    With `options.host_threads` the masks are encoded and written on a background thread, one after
    another in the order they were computed (so each expression's files keep their order); an error
    there (`OutputError`: disk full, permissions) is raised here, and no `expression.json` is written.
    """
    outcomes = [
        ExpressionOutcome(job.exp_id, job.text, str(out), job.keyframe, video.num_frames)
        for job, out in zip(jobs, output_dirs, strict=True)
    ]
    ious: list[list[float]] = [[] for _ in jobs]
    # Per frame, the last answer (a key frame is visited twice): SAM2's predicted IoU and object score.
    scores: list[dict[int, tuple[float | None, float | None]]] = [{} for _ in jobs]
    previews = [PreviewSheet(video) for _ in jobs]
    clock = ExpressionClock(len(jobs))
    with ExitStack() as stack:
        writers = []
        for index, out in enumerate(output_dirs):  # they create the folders, OS errors as OutputError
            # Closing a writer set writes its at-close outputs (RLE, overlay video): that expression's time.
            timed = _TimedExit(open_writers(formats, out, video), functools.partial(clock.add, index))
            writers.append(stack.enter_context(timed))
        # Entered after the writers, so it is left first: every queued mask is written (or, after an
        # error, skipped) before the writers close, and before any `expression.json` below.
        mask_writer = stack.enter_context(ordered_worker(threaded=options.host_threads))
        from glus_cli.pipeline import segment_video  # torch and transformers load with the model

        # Closed on the way out, whatever the way: that stops the frame prefetch thread at once.
        results = stack.enter_context(
            closing(
                segment_video(
                    model, video, [job.text for job in jobs], options, keyframes=[j.keyframe for j in jobs]
                )
            )
        )
        for result in results:
            index = result.expression_index
            mask_writer.submit(writers[index].write, result.frame_index, result.mask)
            previews[index].add(result)
            scores[index][result.frame_index] = (
                (float(result.iou), float(result.object_score)) if result.is_seg else (None, None)
            )
            if result.is_seg:
                ious[index].append(result.iou)
            else:
                outcomes[index].frames_without_seg.append(video.frame_names[result.frame_index])
            if on_result is not None:
                on_result(result)
            if on_step is not None:
                on_step(index)
            clock.charge((result.frame_index, result.direction), index)
    for index, (outcome, job_ious, out, writer_set, preview, frame_scores) in enumerate(
        zip(outcomes, ious, output_dirs, writers, previews, scores, strict=True)
    ):
        started = time.perf_counter()
        outcome.mean_predicted_iou = sum(job_ious) / len(job_ious) if job_ious else None
        outcome.frames_without_seg = sorted(set(outcome.frames_without_seg))
        if outcome.frames_without_seg:
            logger.warning(
                "expression %r: no [SEG] answer for %d frame(s); their masks are blank",
                outcome.text,
                len(outcome.frames_without_seg),
            )
        outcome.overlay = None if writer_set.overlay is None else writer_set.overlay.record()
        preview.write(out / PREVIEW_FILENAME)
        FrameConfidence.from_scores(video.frame_names, frame_scores).write(out / CONFIDENCE_NAME)
        clock.add(index, time.perf_counter() - started)
        outcome.seconds = clock.totals()[index]
        write_json_atomic(out / RECORD_NAME, asdict(outcome))
    return outcomes
