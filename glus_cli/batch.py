"""Run GLUS over a dataset: many videos, many expressions each, in the submission layout, resumable.

A batch is a folder of videos (files, or frame folders such as a dataset's ``JPEGImages/``) plus an
expressions file. Its output is the MeViS / Ref-YouTube-VOS submission layout
``OUT/<video>/<exp_id>/<frame>.png`` (other formats beside the PNGs), one folder per (video, expression).

- Work unit: the video. All pending expressions of a video go to one `segment_to_outputs` call, so the
  decoded frames and the per-frame image features are shared by them.
- Resume: the rule of `glus_cli.resume`: an expression's folder is complete when its ``expression.json``
  exists (written last by the runner). A rerun skips complete folders and empties incomplete ones before
  redoing them, so nothing of an interrupted attempt survives in a redone folder.
- Names: the expressions file may name a video with or without its extension (`dog_walk.mp4` for the
  file ``dog_walk.mp4`` or the folder ``dog_walk``); every name is resolved before the model loads, and an
  unknown one is refused with the closest name the input holds (or left out with ``skip_missing``).
- Isolation: an error in one video is recorded in the run's `BatchReport` and the next video starts.
- Sharding: shard ``i/n`` takes every n-th video of the name-sorted list, starting at the i-th, so the
  shards of one run are disjoint and together cover every video.
"""

from __future__ import annotations

import csv
import difflib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glus_cli.errors import InputError, one_line
from glus_cli.json_files import parse_json, read_text
from glus_cli.plural import plural
from glus_cli.resume import IsDone, is_complete, restart
from glus_cli.runner import Expression, ExpressionOutcome, segment_to_outputs
from glus_cli.safe_names import checked_name, child_path
from glus_cli.video import (
    DEFAULT_FPS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    VideoSource,
    natural_key,
    open_video,
)

if TYPE_CHECKING:
    from glus_cli.model.glus import GlusModel
    from glus_cli.protocol import FrameResult, SegmentationOptions

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("video", "exp_id", "expression")
"""Columns of an expressions CSV (``exp_id`` optional: ``0, 1, ...`` per video in file order)."""

KeyframeLookup = Callable[[str, str, Sequence[str]], int | None]
"""``(video, exp_id, frame_names) -> key-frame index or None``, see `glus_cli.keyframe_files.keyframe_for`."""


@dataclass(frozen=True)
class VideoTask:
    """One video of a batch and the expressions to segment in it.

    Attributes:
        name: the video's name (folder name or file stem), naming its output folder.
        source: its frame folder or video file (None: a video the input lacks, in tasks made without
            `plan_tasks`, which refuses such names or leaves them out; the task fails with that reason).
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
            exists, `glus_cli.resume.is_complete`).
        on_video: called once a video is open, with its pending jobs; returns the per-step callback
            (job index) for progress bars.
        on_result: called with every frame result of a pending job.
        on_video_done: called after all pending jobs of a video were written.
    """

    is_done: IsDone = is_complete
    on_video: Callable[[VideoTask, VideoSource, list[Expression]], Callable[[int], None]] | None = None
    on_result: Callable[[VideoTask, Expression, VideoSource, FrameResult], None] | None = None
    on_video_done: Callable[[VideoTask, VideoSource, list[Expression]], None] | None = None


@dataclass
class VideoFailure:
    """A video that could not be segmented, or one expression of it (`exp_id`), and why (one line)."""

    video: str
    error: str
    exp_id: str | None = None

    @property
    def label(self) -> str:
        """``<video>`` or ``<video>/<exp_id>``, for messages."""
        return self.video if self.exp_id is None else f"{self.video}/{self.exp_id}"


@dataclass
class BatchReport:
    """What a batch run did, for `summary.json` and the CLI's table."""

    videos: int = 0
    expressions: int = 0
    skipped: list[str] = field(default_factory=list)
    """``<video>/<exp_id>`` folders found complete and left as they were."""
    outcomes: list[ExpressionOutcome] = field(default_factory=list)
    failures: list[VideoFailure] = field(default_factory=list)

    @classmethod
    def all_skipped(cls, tasks: Sequence[VideoTask]) -> BatchReport:
        """The report of a run over `tasks` whose expressions were all complete (no model needed)."""
        return cls(
            videos=len(tasks),
            expressions=sum(len(task.expressions) for task in tasks),
            skipped=[f"{task.name}/{exp.exp_id}" for task in tasks for exp in task.expressions],
        )

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "videos": self.videos,
            "expressions": self.expressions,
            "expressions_done": len(self.outcomes),
            "expressions_skipped": len(self.skipped),
            "skipped": self.skipped,
            "failures": [asdict(failure) for failure in self.failures],
            "outcomes": [asdict(outcome) for outcome in self.outcomes],
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
    - CSV with a header naming ``video``, ``expression`` and optionally ``exp_id`` (in any case).

    Video names are kept as written; `plan_tasks` resolves them against the input.

    Video names and exp_ids become folders (``OUT/<video>/<exp_id>/``), so each must be one plain name
    (`glus_cli.safe_names`); the whole file is checked before anything is written.

    Raises:
        InputError: the file is missing, malformed, repeats a (video, exp_id), lists no expression, or
            has a video name or exp_id that is not one plain folder name.
    """
    text = read_text(path, what="expressions file ")
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        # Headers as spreadsheets write them: `Video`, ` Expression `, a byte-order mark before the first.
        reader.fieldnames = [name.lstrip("\ufeff").strip().lower() for name in reader.fieldnames or ()]
        rows = list(reader)
        missing = {"video", "expression"} - set(reader.fieldnames)
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
        name = checked_name(video, source=path, entry="video")
        found = expressions.setdefault(name, [])
        exp_name = str(len(found)) if exp_id is None else exp_id
        exp = Expression(checked_name(exp_name, source=path, entry=f"video {name!r}: exp_id"), expression)
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


def plan_tasks(
    videos: dict[str, Path], expressions: dict[str, list[Expression]], *, skip_missing: bool = False
) -> list[VideoTask]:
    """One task per video that has expressions, sorted by name (videos without expressions are left out).

    A name of the expressions file is resolved by `resolve_video_name`; the expressions of names that
    resolve to the same video are merged in file order.

    Raises:
        InputError: a name is not in the input (unless `skip_missing`: then it is left out, with a
            warning; `missing_videos` lists them), or two names of one video repeat an exp_id.
    """
    missing = missing_videos(videos, expressions)
    if missing and not skip_missing:
        raise InputError(
            f"{plural(len(missing), 'video')} of the expressions file {'is' if len(missing) == 1 else 'are'} "
            f"not in the input: {_with_suggestions(missing, videos)}; fix the names, or pass "
            "--skip-missing to leave them out"
        )
    if missing:
        logger.warning("%s not in the input, left out: %s", plural(len(missing), "video"), ", ".join(missing))
    merged: dict[str, list[Expression]] = {}
    for name, exps in expressions.items():
        video = resolve_video_name(name, videos)
        if video is None:
            continue
        found = merged.setdefault(video, [])
        for exp in exps:
            if any(other.exp_id == exp.exp_id for other in found):
                raise InputError(f"video {video!r} is named in two ways that both list exp_id {exp.exp_id!r}")
            found.append(exp)
    unused = sorted(set(videos) - set(merged))
    if unused:
        logger.info("%s without expressions left out (first: %s)", plural(len(unused), "video"), unused[0])
    names = sorted(merged, key=natural_key)
    return [VideoTask(name, videos[name], tuple(merged[name])) for name in names]


def resolve_video_name(name: str, videos: dict[str, Path]) -> str | None:
    """The video of `videos` (by `find_videos` name) that an expressions file's `name` means, or None.

    `name` is the video's name (a folder's name, a file's stem), its file name, or a folder's name with a
    video extension (`dog_walk.mp4` for the folder ``dog_walk``, as a list made from the videos has it).
    """
    if name in videos:
        return name
    stem, suffix = Path(name).stem, Path(name).suffix.lower()
    path = videos.get(stem)
    if path is None or suffix not in VIDEO_EXTENSIONS:
        return None
    return stem if path.is_dir() or path.name.lower() == name.lower() else None


def missing_videos(videos: dict[str, Path], expressions: dict[str, list[Expression]]) -> list[str]:
    """The names of the expressions file that name no video of `videos`, in file order."""
    return [name for name in expressions if resolve_video_name(name, videos) is None]


def _with_suggestions(names: Sequence[str], videos: dict[str, Path], limit: int = 5) -> str:
    """``'dgo' (did you mean 'dog'?), 'cat'``: the first `limit` names, each with its closest video."""
    shown = []
    for name in names[:limit]:
        stem = Path(name).stem if Path(name).suffix.lower() in VIDEO_EXTENSIONS else name
        close = difflib.get_close_matches(stem, list(videos), n=1)
        shown.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(shown) + more


def expression_folder(out: Path, video: str, exp_id: str) -> Path:
    """``out/<video>/<exp_id>``, the folder of one expression's outputs (names checked again here, so a
    task that did not come from `load_expressions`, such as one sent to a Ray worker, cannot escape `out`).

    Raises:
        InputError: `video` or `exp_id` is not one plain folder name.
    """
    return child_path(out, video, exp_id, source=f"the task of video {video!r}", entry="folder name")


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
    folder_fps: float = DEFAULT_FPS,
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
        folder_fps: frame rate of the videos that are folders of frames (video files keep their own).
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
            if hooks.is_done(expression_folder(out, task.name, expression.exp_id)):
                report.skipped.append(f"{task.name}/{expression.exp_id}")
            else:
                pending.append(expression)
        if not pending:
            logger.info(
                "%s: all %s complete, skipped", task.name, plural(len(task.expressions), "expression")
            )
            continue
        started = time.perf_counter()
        try:
            report.outcomes.extend(
                _run_video(
                    model,
                    task,
                    pending,
                    out,
                    formats,
                    options,
                    open_video_args={"stride": stride, "max_frames": max_frames, "folder_fps": folder_fps},
                    keyframe_for=keyframe_for,
                    hooks=hooks,
                )
            )
        except Exception as error:  # one bad video must not stop the run
            message = one_line(error)
            logger.debug("video %s failed", task.name, exc_info=True)
            logger.warning("%s failed: %s", task.name, message)
            report.failures.append(VideoFailure(task.name, message))
        else:
            logger.info(
                "%s: %s in %.1f s",
                task.name,
                plural(len(pending), "expression"),
                time.perf_counter() - started,
            )
    return report


def _run_video(
    model: GlusModel,
    task: VideoTask,
    pending: Sequence[Expression],
    out: Path,
    formats: Sequence[str],
    options: SegmentationOptions,
    *,
    open_video_args: dict[str, Any],
    keyframe_for: KeyframeLookup | None,
    hooks: BatchHooks,
) -> list[ExpressionOutcome]:
    """Segment the pending expressions of one video in one pass over its frames."""
    if task.source is None:
        raise InputError(f"video {task.name} is listed in the expressions file but not in the input folder")
    with open_video(task.source, **open_video_args) as video:
        jobs = [
            replace(exp, keyframe=keyframe_for(task.name, exp.exp_id, video.frame_names))
            if keyframe_for is not None
            else exp
            for exp in pending
        ]
        folders = [expression_folder(out, task.name, job.exp_id) for job in jobs]
        for folder in folders:
            restart(folder)
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
