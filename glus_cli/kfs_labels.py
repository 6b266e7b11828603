"""KFS training labels: the per-frame IoU files the official key-frame selector trainer reads.

GLUS-S's key-frame selector (paper §3.4, official ``kfs/``) learns to predict, for each frame, how well
GLUS segments it: the IoU (J) of GLUS's mask with the ground truth. Its trainer
(``kfs/utils/rvos_dataset.py``) reads those labels from one file per expression,
``<root>/<video>/<exp_id>.json``, holding a JSON list of numbers: for a frame at position ``i`` of the
video's frame list in ``meta_expressions.json`` it regresses ``scores[i]``. It keeps only the expressions
that have a file (it checks ``os.path.exists``) and drops the others.

`write_labels` writes that layout from the key-frame records of a ground-truth run of `glus keyframes`:
the list is indexed by the ground truth's frame list of the expression (the meta file's, which the
trainer indexes), each entry the IoU of the written mask with the ground truth.

A frame that was not segmented (``--stride`` or ``--max-frames`` left it out, or the input video lacks
it) has no IoU, and the trainer may sample any frame. Filling it in would invent training targets, so
such an expression gets no file: the trainer skips it, and the files written are a valid training set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from glus_cli.errors import OutputError
from glus_cli.files import write_json_atomic
from glus_cli.safe_names import child_path

LABELS_DIR = "kfs_labels"
"""Where `glus keyframes --ground-truth` writes the labels: ``OUT/kfs_labels/<video>/<exp_id>.json``."""


class ScoredExpression(Protocol):
    """What a label is made from: one (video, expression) and the IoU of each segmented frame (a
    `glus_cli.keyframe_files.KeyframeRecord` of a ground-truth run is one)."""

    @property
    def video(self) -> str:
        """The video's name."""
        ...

    @property
    def exp_id(self) -> str:
        """The expression's id."""
        ...

    @property
    def frames(self) -> Sequence[str]:
        """The frames that were segmented."""
        ...

    @property
    def scores(self) -> Sequence[float]:
        """The IoU of each of `frames` with the ground truth."""
        ...


@dataclass(frozen=True)
class LabelReport:
    """What `write_labels` wrote.

    Attributes:
        root: the label folder.
        written: ``<video>/<exp_id>`` of each expression given a label file.
        unlabelled: ``<video>/<exp_id>`` of each expression left without one, because some frame of its
            ground truth was not segmented.
    """

    root: Path
    written: list[str]
    unlabelled: list[str]


def label_path(root: Path, video: str, exp_id: str) -> Path:
    """The label file of (video, expression): ``<root>/<video>/<exp_id>.json``."""
    return child_path(root, video, f"{exp_id}.json", source="the key-frame records", entry="label file name")


def frame_labels(
    truth_frames: Sequence[str], frames: Sequence[str], ious: Sequence[float]
) -> list[float] | None:
    """One IoU per frame of `truth_frames`, taken from the segmented `frames` and their `ious`.

    Args:
        truth_frames: the ground truth's frames of the expression, in its order (the trainer's index).
        frames: the frames that were segmented.
        ious: the IoU of each of `frames`.

    Returns:
        The labels in `truth_frames` order, or None when some frame of `truth_frames` was not segmented.
    """
    by_frame = dict(zip(frames, ious, strict=True))
    if not all(frame in by_frame for frame in truth_frames):
        return None
    return [by_frame[frame] for frame in truth_frames]


def write_labels(
    root: Path, records: Sequence[ScoredExpression], truth_frames: Callable[[str, str], Sequence[str]]
) -> LabelReport:
    """Write each record's per-frame IoUs as ``<root>/<video>/<exp_id>.json``, atomically.

    A record whose ground-truth frames were not all segmented gets no file, and a file left there by an
    earlier run is removed, so the folder never holds a label that these masks do not support.

    Args:
        root: the label folder (created as needed).
        records: one per expression, whose ``scores`` are IoUs with the ground truth.
        truth_frames: the ground truth's frame list of ``(video, exp_id)``.

    Returns:
        The expressions labelled and those left out.

    Raises:
        OutputError: a folder or file cannot be written.
    """
    written: list[str] = []
    unlabelled: list[str] = []
    for record in records:
        path = label_path(root, record.video, record.exp_id)
        labels = frame_labels(truth_frames(record.video, record.exp_id), record.frames, record.scores)
        name = f"{record.video}/{record.exp_id}"
        try:
            if labels is None:
                path.unlink(missing_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
        if labels is None:
            unlabelled.append(name)
            continue
        write_json_atomic(path, labels)
        written.append(name)
    return LabelReport(root, written, unlabelled)
