"""Run GLUS over one video for one or more expressions and write every requested output format.

Shared by `glus segment` and `glus batch`: frames are decoded once per video and shared by all of its
expressions (see `pipeline.segment_video`); each expression's outputs go to its own folder and are
closed atomically. An expression's folder is complete when its `expression.json` record exists: that
file is written last, after every mask file, so a run killed at any moment never leaves a folder that
looks finished.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from glus_cli.outputs import open_writers, write_json_atomic

if TYPE_CHECKING:
    from glus_cli.model.glus import GlusModel
    from glus_cli.protocol import FrameResult, SegmentationOptions
    from glus_cli.video import VideoSource

logger = logging.getLogger(__name__)

RECORD_NAME = "expression.json"


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


def is_complete(expression_dir: Path) -> bool:
    """Whether an expression's outputs were all written (its record exists)."""
    return (expression_dir / RECORD_NAME).is_file()


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
        on_result: called with every `FrameResult` once its mask is written (e.g. to keep SAM2's
            per-frame confidence, as `glus keyframes` does).

    Returns:
        One outcome per job, in order. Each job's `expression.json` is written when its masks are.
    """
    outcomes = [
        ExpressionOutcome(job.exp_id, job.text, str(out), job.keyframe, video.num_frames)
        for job, out in zip(jobs, output_dirs, strict=True)
    ]
    ious: list[list[float]] = [[] for _ in jobs]
    started = time.perf_counter()
    with ExitStack() as stack:
        writers = []
        for out in output_dirs:  # the writers create the folders, turning OS errors into OutputError
            writers.append(stack.enter_context(open_writers(formats, out, video)))
        from glus_cli.pipeline import segment_video  # torch and transformers load with the model

        results = segment_video(
            model, video, [job.text for job in jobs], options, keyframes=[j.keyframe for j in jobs]
        )
        for result in results:
            index = result.expression_index
            writers[index].write(result.frame_index, result.mask)
            if result.is_seg:
                ious[index].append(result.iou)
            else:
                outcomes[index].frames_without_seg.append(video.frame_names[result.frame_index])
            if on_result is not None:
                on_result(result)
            if on_step is not None:
                on_step(index)
    elapsed = time.perf_counter() - started
    for outcome, job_ious, out in zip(outcomes, ious, output_dirs, strict=True):
        outcome.mean_predicted_iou = sum(job_ious) / len(job_ious) if job_ious else None
        outcome.seconds = round(elapsed / len(jobs), 3)
        outcome.frames_without_seg = sorted(set(outcome.frames_without_seg))
        if outcome.frames_without_seg:
            logger.warning(
                "expression %r: no [SEG] answer for %d frame(s); their masks are blank",
                outcome.text,
                len(outcome.frames_without_seg),
            )
        write_json_atomic(out / RECORD_NAME, asdict(outcome))
    return outcomes
