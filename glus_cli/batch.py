"""Run GLUS over a dataset: many videos, many expressions each, in the submission layout, resumable.

A batch is a folder of videos (files, or frame folders such as a dataset's ``JPEGImages/``) plus an
expressions file. Its output is the MeViS / Ref-YouTube-VOS submission layout
``OUT/<video>/<exp_id>/<frame>.png`` (other formats beside the PNGs), one folder per (video, expression).

- Work unit: the video. All pending expressions of a video go to one `segment_to_outputs` call, so the
  decoded frames and the per-frame image features are shared by them.
- Resume: an expression's folder is complete when its ``expression.json`` exists (written last by the
  runner). A rerun skips complete folders and deletes incomplete ones before redoing them, so nothing of
  an interrupted attempt (or of a run with other options) survives in a redone folder.
- Isolation: an error in one video is recorded in the run's `BatchReport` and the next video starts.
- Sharding: shard ``i/n`` takes every n-th video of the name-sorted list, starting at the i-th, so the
  shards of one run are disjoint and together cover every video.
"""

from __future__ import annotations

import csv
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glus_cli.errors import InputError, one_line
from glus_cli.json_files import parse_json, read_text
from glus_cli.runner import Expression, ExpressionOutcome, is_complete, segment_to_outputs
from glus_cli.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, VideoSource, natural_key, open_video

if TYPE_CHECKING:
    from glus_cli.model.glus import GlusModel
    from glus_cli.protocol import FrameResult, SegmentationOptions

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("video", "exp_id", "expression")
"""Columns of an expressions CSV (``exp_id`` optional: ``0, 1, ...`` per video in file order)."""

KeyframeLookup = Callable[[str, str, Sequence[str]], int | None]
"""``(video, exp_id, frame_names) -> key-frame index or None``, see `glus_cli.keyframes.keyframe_for`."""


@dataclass(frozen=True)
class VideoTask:
    """One video of a batch and the expressions to segment in it.

    Attributes:
        name: the video's name (folder name or file stem), naming its output folder.
        source: its frame folder or video file (None: the expressions file names a video the input
            folder lacks; the task fails with that reason).
        expressions: the expressions, in file order.
    """

    name: str
    source: Path | None
    expressions: tuple[Expression, ...]


@dataclass(frozen=True)
class BatchHooks:
    """Callbacks of `run_batch` (all optional).

    Attributes:
        is_done: whether an expression folder is finished and can be skipped (default: its record
            exists, `glus_cli.runner.is_complete`).
        on_video: called once a video is open, with its pending jobs; returns the per-step callback
            (job index) for progress bars.
        on_result: called with every frame result of a pending job.
        on_video_done: called after all pending jobs of a video were written.
    """

    is_done: Callable[[Path], bool] = is_complete
    on_video: Callable[[VideoTask, VideoSource, list[Expression]], Callable[[int], None]] | None = None
    on_result: Callable[[VideoTask, Expression, VideoSource, FrameResult], None] | None = None
    on_video_done: Callable[[VideoTask, VideoSource, list[Expression]], None] | None = None


@dataclass
class VideoFailure:
    """A video that could not be segmented, and why (one line)."""

    video: str
    error: str


@dataclass
class BatchReport:
    """What a batch run did, for `summary.json` and the CLI's table."""

    videos: int = 0
    expressions: int = 0
    skipped: list[str] = field(default_factory=list)
    """``<video>/<exp_id>`` folders found complete and left as they were."""
    outcomes: list[ExpressionOutcome] = field(default_factory=list)
    failures: list[VideoFailure] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "videos": self.videos,
            "expressions": self.expressions,
            "expressions_done": len(self.outcomes),
            "expressions_skipped": len(self.skipped),
            "skipped": self.skipped,
            "failures": [asdict(failure) for failure in self.failures],
            "outcomes": [outcome.summary() for outcome in self.outcomes],
        }


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------


def find_videos(root: Path) -> dict[str, Path]:
    """The videos in `root`: sub-folders holding images, and video files, by name (folder or stem).

    Raises:
        InputError: `root` is not a folder, holds no videos, or two entries share a name.
    """
    if not root.is_dir():
        raise InputError(f"{root} is not a folder of videos or frame folders")
    videos: dict[str, Path] = {}
    for entry in sorted(root.iterdir(), key=lambda path: natural_key(path.name)):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and any(_is_image(child) for child in entry.iterdir()):
            name = entry.name
        elif entry.is_file() and entry.suffix.lower() in VIDEO_EXTENSIONS:
            name = entry.stem
        else:
            continue
        if name in videos:
            raise InputError(f"{root} holds two videos named {name!r}: {videos[name].name} and {entry.name}")
        videos[name] = entry
    if not videos:
        raise InputError(f"{root} holds no videos and no folders of frames")
    return videos


def load_expressions(path: Path) -> dict[str, list[Expression]]:
    """Expressions per video from a JSON or CSV file, in file order.

    Accepted forms:

    - a MeViS / Ref-YouTube-VOS ``meta_expressions.json``:
      ``{"videos": {video: {"expressions": {exp_id: {"exp": text, ...}}, "frames": [...]}}}``;
    - JSON ``{video: {exp_id: text}}`` or ``{video: [text, ...]}`` (exp_ids ``0, 1, ...``);
    - JSON ``[{"video": ..., "exp_id": ..., "expression": ...}, ...]`` (``exp_id`` optional);
    - CSV with a header naming ``video``, ``expression`` and optionally ``exp_id``.

    Raises:
        InputError: the file is missing, malformed, repeats a (video, exp_id), or lists no expression.
    """
    text = read_text(path, what="expressions file ")
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        missing = {"video", "expression"} - set(rows[0] if rows else ())
        if missing:
            raise InputError(f"{path}: the CSV header must name video and expression (optionally exp_id)")
        entries: Iterable[tuple[str, str | None, Any]] = (
            (row["video"], row.get("exp_id") or None, row["expression"]) for row in rows
        )
    else:
        entries = _json_entries(parse_json(text, path, what="expressions file "), path)
    expressions: dict[str, list[Expression]] = {}
    for video, exp_id, expression in entries:
        if not isinstance(expression, str) or not expression.strip():
            raise InputError(f"{path}: video {video!r} has an empty or non-text expression")
        found = expressions.setdefault(str(video), [])
        exp = Expression(str(len(found)) if exp_id is None else str(exp_id), expression)
        if any(other.exp_id == exp.exp_id for other in found):
            raise InputError(f"{path}: video {video!r} lists exp_id {exp.exp_id!r} twice")
        found.append(exp)
    if not expressions:
        raise InputError(f"{path} lists no expressions")
    return expressions


def _json_entries(data: Any, path: Path) -> list[tuple[str, str | None, Any]]:
    """(video, exp_id or None, text) triples of the JSON forms `load_expressions` accepts."""
    if isinstance(data, dict) and isinstance(data.get("videos"), dict):
        entries = []
        for video, entry in data["videos"].items():
            exps = entry.get("expressions") if isinstance(entry, dict) else None
            if not isinstance(exps, dict):
                raise InputError(f'{path}: video {video} has no "expressions" object')
            for exp_id, exp in exps.items():
                entries.append((video, exp_id, exp.get("exp") if isinstance(exp, dict) else None))
        return entries
    if isinstance(data, dict):
        entries = []
        for video, exps in data.items():
            if isinstance(exps, dict):
                entries.extend((video, exp_id, text) for exp_id, text in exps.items())
            elif isinstance(exps, list):
                entries.extend((video, None, text) for text in exps)
            else:
                raise InputError(f"{path}: video {video!r} maps to neither {{exp_id: text}} nor [text, ...]")
        return entries
    if isinstance(data, list) and all(isinstance(row, dict) for row in data):
        return [(row.get("video"), row.get("exp_id"), row.get("expression")) for row in data]
    raise InputError(
        f"{path}: expected a meta_expressions.json, {{video: {{exp_id: text}}}}, {{video: [text]}} "
        'or [{"video", "exp_id", "expression"}]'
    )


def plan_tasks(videos: dict[str, Path], expressions: dict[str, list[Expression]]) -> list[VideoTask]:
    """One task per video that has expressions, sorted by name (videos without expressions are left out)."""
    unused = sorted(set(videos) - set(expressions))
    if unused:
        logger.info("%d video(s) have no expressions and are left out (first: %s)", len(unused), unused[0])
    names = sorted(expressions, key=natural_key)
    return [VideoTask(name, videos.get(name), tuple(expressions[name])) for name in names]


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` as ``(i, n)`` with ``0 <= i < n``.

    Raises:
        InputError: not of that form.
    """
    index, _, count = text.partition("/")
    try:
        shard = (int(index), int(count))
    except ValueError:
        raise InputError(f"--shard must be i/n such as 0/4, got {text!r}") from None
    if not 0 <= shard[0] < shard[1]:
        raise InputError(f"--shard {text}: need 0 <= i < n")
    return shard


def select_shard(tasks: Sequence[VideoTask], index: int, count: int) -> list[VideoTask]:
    """Shard `index` of `count`: every `count`-th task of the name-sorted list, starting at `index`."""
    ordered = sorted(tasks, key=lambda task: natural_key(task.name))
    return ordered[index::count]


# --------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------


def run_batch(
    model: GlusModel,
    tasks: Sequence[VideoTask],
    out: Path,
    formats: Sequence[str],
    options: SegmentationOptions,
    *,
    stride: int = 1,
    max_frames: int | None = None,
    keyframe_for: KeyframeLookup | None = None,
    hooks: BatchHooks | None = None,
) -> BatchReport:
    """Segment every pending (video, expression) of `tasks` into ``out/<video>/<exp_id>/``.

    Args:
        model: the loaded GLUS model (loaded once for the run).
        tasks: the videos and their expressions.
        out: the output root (the submission layout is written under it).
        formats: output formats, as in `glus segment`.
        options: protocol settings.
        stride: keep every `stride`-th frame of each video.
        max_frames: keep at most this many frames (after `stride`).
        keyframe_for: key-frame index of ``(video, exp_id, frame_names)`` (None: plain forward runs).
        hooks: progress and extra-output callbacks, and the completeness test.

    Returns:
        The report. A failed video is listed in ``failures``; its incomplete folders stay incomplete.
    """
    hooks = hooks or BatchHooks()
    report = BatchReport(videos=len(tasks), expressions=sum(len(task.expressions) for task in tasks))
    for task in tasks:
        pending = []
        for expression in task.expressions:
            folder = out / task.name / expression.exp_id
            if hooks.is_done(folder):
                report.skipped.append(f"{task.name}/{expression.exp_id}")
            else:
                pending.append(expression)
        if not pending:
            logger.info("%s: all %d expressions complete, skipped", task.name, len(task.expressions))
            continue
        started = time.perf_counter()
        try:
            report.outcomes.extend(
                _run_video(
                    model, task, pending, out, formats, options, stride, max_frames, keyframe_for, hooks
                )
            )
        except Exception as error:  # one bad video must not stop the run
            message = one_line(error)
            logger.debug("video %s failed", task.name, exc_info=True)
            logger.warning("%s failed: %s", task.name, message)
            report.failures.append(VideoFailure(task.name, message))
        else:
            logger.info(
                "%s: %d expressions in %.1f s", task.name, len(pending), time.perf_counter() - started
            )
    return report


def _run_video(
    model: GlusModel,
    task: VideoTask,
    pending: Sequence[Expression],
    out: Path,
    formats: Sequence[str],
    options: SegmentationOptions,
    stride: int,
    max_frames: int | None,
    keyframe_for: KeyframeLookup | None,
    hooks: BatchHooks,
) -> list[ExpressionOutcome]:
    """Segment the pending expressions of one video in one pass over its frames."""
    if task.source is None:
        raise InputError(f"video {task.name} is listed in the expressions file but not in the input folder")
    with open_video(task.source, stride=stride, max_frames=max_frames) as video:
        jobs = [
            replace(exp, keyframe=keyframe_for(task.name, exp.exp_id, video.frame_names))
            if keyframe_for is not None
            else exp
            for exp in pending
        ]
        folders = [out / task.name / job.exp_id for job in jobs]
        for folder in folders:
            if folder.exists():  # an interrupted attempt: start the folder afresh
                shutil.rmtree(folder)
        on_step = hooks.on_video(task, video, jobs) if hooks.on_video is not None else None
        on_result = hooks.on_result
        handle_result = (
            None
            if on_result is None
            else lambda result: on_result(task, jobs[result.expression_index], video, result)
        )
        outcomes = segment_to_outputs(
            model, video, jobs, folders, formats, options, on_step=on_step, on_result=handle_result
        )
        if hooks.on_video_done is not None:
            hooks.on_video_done(task, video, jobs)
        return outcomes


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")
