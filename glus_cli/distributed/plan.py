"""Which videos of a planned batch still need work, and in which order the Ray driver sends them.

The batch itself is planned exactly as a local `glus batch` plans it (`plan_tasks`, then `select_shard`);
this module only applies the resume rule (`glus_cli.resume`) early, so that finished videos never reach
a worker, and orders the rest longest first, so that the longest video does not start last and leave
every other worker idle at the end. Cost is frames x pending expressions, with frame counts estimated without
decoding. The worker re-checks completeness when the video runs (`run_batch`), so an estimate can only
make the order less good, never the outputs different.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from glus_cli.batch import VideoTask, expression_folder
from glus_cli.resume import IsDone, is_complete
from glus_cli.video import estimate_num_frames, natural_key


def pending_expressions(task: VideoTask, out: Path, is_done: IsDone = is_complete) -> list[str]:
    """exp_ids of `task` whose folder under `out` is not finished."""
    return [
        exp.exp_id for exp in task.expressions if not is_done(expression_folder(out, task.name, exp.exp_id))
    ]


@dataclass(frozen=True)
class PendingVideo:
    """A video with work left, and its estimated query steps (frames x pending expressions)."""

    task: VideoTask
    steps: int


def longest_first(
    tasks: Sequence[VideoTask], out: Path, *, stride: int = 1, max_frames: int | None = None
) -> list[PendingVideo]:
    """The tasks with pending expressions, largest estimated cost first (ties keep name order).

    A task without a source (a video the input folder lacks) costs nothing: it fails at once on its
    worker, as it does locally.
    """
    pending = []
    for task in tasks:
        expressions = pending_expressions(task, out)
        if expressions:
            frames = (
                estimate_num_frames(task.source, stride=stride, max_frames=max_frames) if task.source else 0
            )
            pending.append(PendingVideo(task, frames * len(expressions)))
    return sorted(pending, key=lambda video: (-video.steps, natural_key(video.task.name)))
