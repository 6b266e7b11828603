"""The instances an export writes: every (expression, frame) mask that passes the confidence filter.

An expression is a track (``track_id``, unique over the export; ``local_id``, 1-based within its video).
Frames are filtered in this order, and each dropped frame is counted once under the first rule it fails:

1. ``require_seg``: the model answered ``[SEG]`` (without it the mask is blank by protocol);
2. ``min_iou``: SAM2's predicted IoU is at least this;
3. ``min_object_score``: SAM2's object-score logit is at least this;

then a mask that passed but is empty is counted as ``empty_masks`` and written nowhere (no format stores an
instance without pixels; YouTube-VIS writes ``null`` for that frame). Masks are read one frame at a time;
a mask whose size differs from its frame's is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from glus_cli.errors import InputError
from glus_cli.run_folder import ExpressionRun, FrameAnswer
from glus_cli.video import ImageSequenceSource, VideoSource


@dataclass(frozen=True)
class Filters:
    """The confidence filter for pseudo-labels (see the module docstring)."""

    min_iou: float | None = None
    min_object_score: float | None = None
    require_seg: bool = True

    @property
    def needs_scores(self) -> bool:
        """Whether the filter reads per-frame SAM2 scores."""
        return self.min_iou is not None or self.min_object_score is not None


@dataclass
class ExportCounts:
    """What an export wrote and dropped, recorded in ``export.json``."""

    videos: int = 0
    expressions: int = 0
    frames: int = 0
    """Frames of the exported expressions looked at (a frame counts once per expression)."""
    instances: int = 0
    dropped_no_seg: int = 0
    dropped_low_iou: int = 0
    dropped_low_object_score: int = 0
    empty_masks: int = 0
    unfinished_expressions: list[str] = field(default_factory=list)
    """``<video>/<folder>`` of each expression folder skipped because it has no ``expression.json``."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready counts."""
        return asdict(self)


@dataclass(frozen=True)
class Track:
    """One exported expression."""

    expression: ExpressionRun
    category_id: int
    track_id: int
    local_id: int


@dataclass(frozen=True)
class Instance:
    """One kept, non-empty mask of a track in one frame."""

    track: Track
    frame_index: int
    answer: FrameAnswer
    mask: np.ndarray


@dataclass
class VideoExport:
    """One video's frames and tracks, as an exporter sees them.

    Attributes:
        name: the video's name.
        frames: its frames (sizes, names, pixels for formats that write images).
        tracks: its exported expressions.
        file_names: each frame's ``<video>/<image file>``, relative to the frames' root.
    """

    name: str
    frames: VideoSource
    tracks: list[Track]
    file_names: list[str]
    filters: Filters
    counts: ExportCounts

    def image_file(self, index: int) -> Path | None:
        """The image file of presented frame `index`, or None where frames are decoded from a video file."""
        return frame_file(self.frames, index)

    def instances(self, track: Track) -> Iterator[Instance]:
        """The kept, non-empty masks of `track`, in frame order (each call reads the masks again).

        Raises:
            InputError: a mask is missing, unreadable, names a frame the video lacks, or has another size.
        """
        index_of = {name: index for index, name in enumerate(self.frames.frame_names)}
        expression = track.expression
        for answer, mask in expression.masks():
            index = index_of.get(answer.name)
            if index is None:
                raise InputError(
                    f"{expression.folder}: frame {answer.name!r} is not a frame of video {self.name!r} "
                    f"({self.frames.num_frames} frames read with the run's stride and frame limit)"
                )
            if mask.shape != self.frames.frame_size:
                raise InputError(
                    f"{expression.folder}: the mask of frame {answer.name!r} is {_size(mask.shape)} but the "
                    f"frame {self.file_names[index]} is {_size(self.frames.frame_size)}"
                )
            if self._keep(answer):
                if mask.any():
                    self.counts.instances += 1
                    yield Instance(track, index, answer, mask)
                else:
                    self.counts.empty_masks += 1

    def _keep(self, answer: FrameAnswer) -> bool:
        """Apply the filter to one frame, counting what it drops."""
        counts, filters = self.counts, self.filters
        counts.frames += 1
        if filters.require_seg and not answer.seg:
            counts.dropped_no_seg += 1
            return False
        if filters.min_iou is not None and (
            answer.predicted_iou is None or answer.predicted_iou < filters.min_iou
        ):
            counts.dropped_low_iou += 1
            return False
        if filters.min_object_score is not None and (
            answer.object_score is None or answer.object_score < filters.min_object_score
        ):
            counts.dropped_low_object_score += 1
            return False
        return True


def frame_file(frames: VideoSource, index: int) -> Path | None:
    """The image file of presented frame `index` of `frames`, or None for a frame of a video file."""
    return frames.paths[index] if isinstance(frames, ImageSequenceSource) else None


def _size(shape: tuple[int, ...]) -> str:
    """``W x H`` as image tools print sizes."""
    return f"{shape[1]}x{shape[0]}"
