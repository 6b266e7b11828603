"""Run folders: what `glus segment`, `glus batch` and `glus keyframes` wrote, read back without a model.

Torch-free (``glus export`` and reports read runs on machines without the model). The layouts:

- ``glus segment``: ``run.json`` (the source, the options) and ``summary.json``, then one folder per
  expression, ``NN-<slug>/``. The video is the recorded source.
- ``glus batch``: ``summary.json`` (``summary.shard-i-of-n.json`` per shard), then ``<video>/<exp_id>/``.
  The videos are those of the recorded ``input`` folder (frame folders or video files).
- ``glus keyframes``: ``keyframe_scores.json``, then ``masks/<video>/<exp_id>/``. The input folder is not
  recorded: pass it as `frames_root`.

Each expression folder holds its masks (``masks_rle.json``, ``<frame>.png`` or ``palette/<frame>.png``,
whichever ``--format`` wrote) and ``expression.json``, written last: a folder without it is unfinished.
``expression.json`` names the frames without a ``[SEG]`` answer and, since per-frame scores are recorded,
every frame's name with SAM2's predicted IoU and object score (`glus_cli.runner.ExpressionOutcome`).

Paths recorded relative to the folder the run was started in are tried as they are, then relative to the
run folder's parent. Names read from the records that become paths go through `glus_cli.safe_names`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from glus_cli.batch import find_videos
from glus_cli.confidence import CONFIDENCE_NAME
from glus_cli.errors import InputError
from glus_cli.json_files import read_json_object
from glus_cli.outputs import PALETTE_DIRNAME, RLE_FILENAME
from glus_cli.runner import RECORD_NAME
from glus_cli.safe_names import checked_name, child_path
from glus_cli.video import VideoSource, open_video

RUN_RECORD = "run.json"
SUMMARY = "summary.json"
KEYFRAME_DETAILS = "keyframe_scores.json"
KEYFRAME_MASKS = "masks"


@dataclass(frozen=True)
class FrameAnswer:
    """The model's answer for one frame of one expression.

    Attributes:
        name: the frame's name (its mask file's stem).
        seg: whether the LLM answered ``[SEG]`` (False: the mask is blank).
        predicted_iou: SAM2's predicted IoU (None: no ``[SEG]``, or not recorded by an older glus-cli).
        object_score: SAM2's object-score logit (None as for `predicted_iou`).
    """

    name: str
    seg: bool
    predicted_iou: float | None
    object_score: float | None


@dataclass(frozen=True)
class FrameAnswers:
    """One expression's answers, one per frame in the video's order, and whether SAM2 scores were recorded."""

    answers: tuple[FrameAnswer, ...]
    scores_recorded: bool


@dataclass(frozen=True)
class ExpressionRun:
    """One finished expression folder. Its per-frame answers are read when asked for (`frame_answers`), so
    that a batch of thousands of expressions is listed without holding every frame's record.

    Attributes:
        video: the video's name.
        exp_id: the expression id (the dataset's, or the order on the command line for ``segment``).
        text: the expression.
        folder: the expression's folder.
    """

    video: str
    exp_id: str
    text: str
    folder: Path

    def frame_answers(self) -> FrameAnswers:
        """The model's answer for every frame: the ``[SEG]`` answers from ``expression.json``'s
        ``frames_without_seg``, SAM2's scores from ``confidence.json`` (for folders written before every
        expression had one, the frames are those of the mask files, without scores).

        Raises:
            InputError: the record is malformed, or names a frame that cannot be a file name.
        """
        return _read_answers(self.folder)

    def masks(self) -> Iterator[tuple[FrameAnswer, np.ndarray]]:
        """Each frame's answer with its bool (H, W) mask, one frame at a time, in frame order.

        Raises:
            InputError: a frame's mask is missing or unreadable.
        """
        answers = self.frame_answers().answers
        rle_path = self.folder / RLE_FILENAME
        if rle_path.is_file():
            document = read_json_object(rle_path, what="mask file ")
            for answer in answers:
                rle = document.get(answer.name)
                if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
                    raise InputError(f"{rle_path} has no mask for frame {answer.name!r}")
                counts = rle["counts"]
                encoded = {
                    "size": rle["size"],
                    "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
                }
                yield answer, mask_utils.decode(encoded) > 0
            return
        palette = (self.folder / PALETTE_DIRNAME).is_dir() and not any(self.folder.glob("*.png"))
        folder = self.folder / PALETTE_DIRNAME if palette else self.folder
        for answer in answers:
            path = child_path(folder, f"{answer.name}.png", source=self.folder / RECORD_NAME, entry="frame")
            yield answer, read_mask_png(path)


@dataclass(frozen=True)
class VideoRun:
    """One video of a run: where its frames are and its expressions.

    Attributes:
        name: the video's name.
        source: its frame folder or video file (None where the run does not record it and no frames root
            was given).
        expressions: the finished expressions, in folder order.
        unfinished: expression folders without ``expression.json`` (interrupted or still running).
    """

    name: str
    source: Path | None
    expressions: tuple[ExpressionRun, ...]
    unfinished: tuple[Path, ...]


@dataclass(frozen=True)
class RunFolder:
    """A run folder of ``glus segment``, ``glus batch`` or ``glus keyframes``, as `read_run_folder` finds it.

    Attributes:
        path: the folder.
        command: ``segment``, ``batch`` or ``keyframes``.
        frames_root: the folder the frames' paths are relative to (the source's parent for ``segment``).
        stride: the run's ``--stride`` (frames presented to the model, and so the masks' frames).
        max_frames: the run's ``--max-frames``.
        videos: the videos, in name order (one for ``segment``).
    """

    path: Path
    command: str
    frames_root: Path | None
    stride: int
    max_frames: int | None
    videos: tuple[VideoRun, ...]

    def expressions(self) -> Iterator[ExpressionRun]:
        """Every finished expression, video by video."""
        for video in self.videos:
            yield from video.expressions

    def open_frames(self, video: VideoRun) -> VideoSource:
        """The frames of `video` as the run read them (same stride and frame limit), for sizes and pixels.

        Raises:
            InputError: the frames are not known or cannot be read.
        """
        if video.source is None:
            where = "not recorded" if self.frames_root is None else f"not in {self.frames_root}"
            raise InputError(
                f"the frames of video {video.name!r} of {self.path} are {where}; pass --frames with the "
                "folder that holds them"
            )
        return open_video(video.source, stride=self.stride, max_frames=self.max_frames)


def read_mask_png(path: Path) -> np.ndarray:
    """A mask PNG as bool (H, W): any nonzero pixel is the object (0/255, 0/1 or palette indices).

    Raises:
        InputError: the file is missing or not an image.
    """
    try:
        with Image.open(path) as image:
            return (
                np.asarray(image) > 0 if image.mode in ("L", "P", "1", "I", "I;16") else _any_channel(image)
            )
    except FileNotFoundError as error:
        raise InputError(f"mask {path} is missing") from error
    except OSError as error:
        raise InputError(f"cannot read mask {path}: {error}") from error


def _any_channel(image: Image.Image) -> np.ndarray:
    array = np.asarray(image)
    return array.any(axis=-1) if array.ndim == 3 else array > 0


def read_run_folder(path: Path, *, frames_root: Path | None = None) -> RunFolder:
    """Read what a run wrote in `path` (no mask is decoded: see `ExpressionRun.masks`).

    Args:
        path: the run's output folder.
        frames_root: where the frames are, overriding the record: the source itself (folder, video or
            glob) for a ``segment`` run, the folder holding the videos for ``batch`` and ``keyframes``.

    Raises:
        InputError: `path` is not a run folder, or a record in it is malformed.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path} is not a folder")
    command = None  # every command records itself in run.json; records of older runs name none
    if (path / RUN_RECORD).is_file():
        command = read_json_object(path / RUN_RECORD, what="run record ").get("command", "segment")
        if command == "segment":
            return _read_segment(path, frames_root)
    summaries = sorted(path.glob("summary*.json"))
    if summaries:
        summary = read_json_object(summaries[0], what="run summary ")
        if summary.get("command") == "batch":
            return _read_batch(path, summary, summaries[0], frames_root)
    if command == "batch":  # stopped before its summary: the frames are where --frames says
        return _read_batch(path, {}, path / RUN_RECORD, frames_root)
    if (path / KEYFRAME_DETAILS).is_file() and (path / KEYFRAME_MASKS).is_dir():
        return _read_keyframes(path, frames_root)
    raise InputError(
        f"{path} is not a glus run folder: it has no {RUN_RECORD} (glus segment), {SUMMARY} (glus batch) "
        f"or {KEYFRAME_DETAILS} (glus keyframes)"
    )


def _read_segment(path: Path, frames_root: Path | None) -> RunFolder:
    record = read_json_object(path / RUN_RECORD, what="run record ")
    protocol = record.get("protocol") or {}
    source = frames_root if frames_root is not None else _recorded_path(record.get("source"), path)
    name = _source_name(source) if source is not None else path.name
    folders = sorted(entry for entry in path.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    video = _read_video(name, source, folders, path / RUN_RECORD)
    root = None if source is None else _source_root(source)
    return RunFolder(
        path, "segment", root, int(protocol.get("stride") or 1), protocol.get("max_frames"), (video,)
    )


def _read_batch(path: Path, summary: Mapping[str, Any], where: Path, frames_root: Path | None) -> RunFolder:
    root = frames_root if frames_root is not None else _recorded_path(summary.get("input"), path)
    options = summary.get("options") or {}
    videos = _read_video_tree(path, root, where)
    return RunFolder(path, "batch", root, int(options.get("stride") or 1), options.get("max_frames"), videos)


def _read_keyframes(path: Path, frames_root: Path | None) -> RunFolder:
    details = read_json_object(path / KEYFRAME_DETAILS, what="key-frame scores ")
    options = details.get("options") or {}
    videos = _read_video_tree(path / KEYFRAME_MASKS, frames_root, path / KEYFRAME_DETAILS)
    return RunFolder(
        path, "keyframes", frames_root, int(options.get("stride") or 1), options.get("max_frames"), videos
    )


def _read_video_tree(tree: Path, root: Path | None, where: Path) -> tuple[VideoRun, ...]:
    """``tree/<video>/<exp_id>/`` with each video's source found in `root` (as `glus batch` finds them)."""
    sources = find_videos(root) if root is not None and root.is_dir() else {}
    videos = []
    for folder in sorted(
        entry for entry in tree.iterdir() if entry.is_dir() and not entry.name.startswith(".")
    ):
        expression_folders = sorted(
            entry for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith(".")
        )
        videos.append(_read_video(folder.name, sources.get(folder.name), expression_folders, where))
    return tuple(videos)


def _read_video(name: str, source: Path | None, folders: list[Path], where: Path) -> VideoRun:
    checked_name(name, source=where, entry="video")
    finished, unfinished = [], []
    for folder in folders:
        if (folder / RECORD_NAME).is_file():
            finished.append(_read_expression(name, folder))
        else:
            unfinished.append(folder)
    return VideoRun(name, source, tuple(finished), tuple(unfinished))


def _read_expression(video: str, folder: Path) -> ExpressionRun:
    record_path = folder / RECORD_NAME
    record = read_json_object(record_path, what="expression record ")
    try:
        return ExpressionRun(video, str(record["exp_id"]), str(record["text"]), folder)
    except KeyError as error:
        raise InputError(f"{record_path} is not an expression record (no {error})") from error


def _read_answers(folder: Path) -> FrameAnswers:
    record_path = folder / RECORD_NAME
    record = read_json_object(record_path, what="expression record ")
    try:
        without_seg = {str(name) for name in record.get("frames_without_seg") or []}
    except TypeError as error:
        raise InputError(f"{record_path} is not an expression record ({error})") from error
    confidence_path = folder / CONFIDENCE_NAME
    recorded = False
    if confidence_path.is_file():
        data = read_json_object(confidence_path, what="confidence file ")
        frames, ious, scores = (
            data.get("frames") or [],
            data.get("predicted_iou") or [],
            data.get("object_score") or [],
        )
        recorded = bool(frames) and len(ious) == len(frames) == len(scores)
    if not recorded:  # written before every expression kept its scores: the frames are the mask files
        frames = _mask_frame_names(folder)
        ious = scores = [None] * len(frames)
    answers = []
    for name, iou, score in zip(frames, ious, scores, strict=True):
        name = checked_name(name, source=confidence_path, entry="frame")
        seg = name not in without_seg
        answers.append(FrameAnswer(name, seg, _number(iou) if seg else None, _number(score) if seg else None))
    return FrameAnswers(tuple(answers), recorded)


def _mask_frame_names(folder: Path) -> list[str]:
    """Frame names from the mask files, for records that do not list them."""
    rle_path = folder / RLE_FILENAME
    if rle_path.is_file():
        return list(read_json_object(rle_path, what="mask file "))
    pngs = sorted(folder.glob("*.png")) or sorted((folder / PALETTE_DIRNAME).glob("*.png"))
    return [png.stem for png in pngs]


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _recorded_path(value: object, run: Path) -> Path | None:
    """A recorded path: as written (absolute, or relative to where the run started), else beside the run."""
    if not isinstance(value, str) or not value:
        return None
    path = Path(value).expanduser()
    if path.is_absolute() or path.exists() or _is_glob(value):
        return path
    beside = run.parent / path
    return beside if beside.exists() else path


def _is_glob(text: str) -> bool:
    return any(character in text for character in "*?[")


def _source_name(source: Path) -> str:
    """The video's name as `open_video` gives it."""
    if _is_glob(str(source)):
        return Path(str(source)).parent.name or "frames"
    return source.resolve().name if source.is_dir() else source.stem


def _source_root(source: Path) -> Path:
    """The folder holding a ``segment`` run's source (for a glob, the one holding its folder)."""
    return Path(str(source)).parent.parent if _is_glob(str(source)) else source.resolve().parent
