"""``preview.jpg``: one expression's run at a glance, a contact sheet written next to its masks.

The sheet shows `PREVIEW_TILES` evenly spaced frames in rows of `PREVIEW_COLUMNS` tiles, each with its
mask tinted as in the overlay video (`glus_cli.outputs.overlay_mask`) and a caption (the frame's name and
its predicted IoU, or "no [SEG]"). Below them a strip has one column per frame: a green bar as high as
SAM2's predicted IoU where the model answered ``[SEG]``, a full-height amber bar where it did not, and a
white tick over the frames shown above.

It is cheap: `PreviewSheet` keeps each frame's answer and score and the masks of the sampled frames only,
while the results stream past, then reads those few frames back from the source (in order, so a source
that cannot seek exactly decodes at most one pass). Layout, for a video of (H, W) frames::

    width  = min(PREVIEW_COLUMNS, tiles) * PREVIEW_TILE_WIDTH
    height = rows * (tile_height + PREVIEW_CAPTION_HEIGHT) + PREVIEW_STRIP_HEIGHT,
    tile_height = round(PREVIEW_TILE_WIDTH * H / W)
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image

from glus_cli.files import atomic_write_bytes
from glus_cli.outputs import overlay_mask

if TYPE_CHECKING:
    from glus_cli.protocol import FrameResult
    from glus_cli.video import VideoSource

PREVIEW_FILENAME = "preview.jpg"
PREVIEW_TILES = 6
"""Frames shown (fewer when the video has fewer)."""
PREVIEW_COLUMNS = 3
PREVIEW_TILE_WIDTH = 320
"""Width of a tile in pixels; its height keeps the frame's aspect ratio."""
PREVIEW_CAPTION_HEIGHT = 20
PREVIEW_STRIP_HEIGHT = 64
"""Height of the per-frame strip: a 16-pixel title, then the bars."""
PREVIEW_JPEG_QUALITY = 90

_BACKGROUND = (32, 32, 32)
_TEXT = (230, 230, 230)
_SEG_BAR = (60, 190, 90)
_NO_SEG_BAR = (235, 165, 40)
_TICK = (255, 255, 255)
_STRIP_TITLE_HEIGHT = 16
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.4


def preview_frame_indices(num_frames: int, tiles: int = PREVIEW_TILES) -> list[int]:
    """`tiles` evenly spaced frame indices from first to last (all of them when there are fewer)."""
    if num_frames <= tiles:
        return list(range(num_frames))
    return sorted({round(i * (num_frames - 1) / (tiles - 1)) for i in range(tiles)})


class PreviewSheet:
    """Collects one expression's results as they arrive, then renders and writes its contact sheet.

    Args:
        video: the source; it must stay open until `write`.
    """

    def __init__(self, video: VideoSource) -> None:
        self._video = video
        self.frame_indices = preview_frame_indices(video.num_frames)
        self._scores: dict[int, float | None] = {}  # frame -> predicted IoU of its [SEG], None: no [SEG]
        self._masks: dict[int, np.ndarray] = {}  # sampled frame -> bool (H, W) mask

    def add(self, result: FrameResult) -> None:
        """Record a frame's answer; a frame seen again (a key frame's second pass) keeps the last one."""
        index = result.frame_index
        self._scores[index] = (result.iou or 0.0) if result.is_seg else None
        if index in self.frame_indices:
            self._masks[index] = result.mask

    def render(self) -> np.ndarray:
        """The contact sheet as RGB uint8 (height, width, 3); see the module docstring for its layout."""
        height, width = self._video.frame_size
        tile_height = max(1, round(PREVIEW_TILE_WIDTH * height / width))
        columns = min(PREVIEW_COLUMNS, len(self.frame_indices))
        rows = math.ceil(len(self.frame_indices) / columns)
        cell_height = tile_height + PREVIEW_CAPTION_HEIGHT
        sheet_size = (rows * cell_height + PREVIEW_STRIP_HEIGHT, columns * PREVIEW_TILE_WIDTH)
        sheet = np.full((*sheet_size, 3), _BACKGROUND, np.uint8)
        for slot, (index, frame) in enumerate(self._video.iter_frames(self.frame_indices)):
            mask = self._masks.get(index)
            if mask is not None:
                frame = overlay_mask(frame, mask)
            top, left = (slot // columns) * cell_height, (slot % columns) * PREVIEW_TILE_WIDTH
            shrink = width > PREVIEW_TILE_WIDTH
            sheet[top : top + tile_height, left : left + PREVIEW_TILE_WIDTH] = cv2.resize(
                frame,
                (PREVIEW_TILE_WIDTH, tile_height),
                interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR,
            )
            _text(sheet, self._caption(index), left + 4, top + tile_height + PREVIEW_CAPTION_HEIGHT - 6)
        self._draw_strip(sheet[rows * cell_height :])
        return sheet

    def write(self, path: Path) -> None:
        """Render the sheet and write it to `path` as a JPEG, atomically.

        Raises:
            OutputError: the file cannot be written.
            InputError: a sampled frame can no longer be decoded.
        """
        buffer = io.BytesIO()
        Image.fromarray(self.render()).save(buffer, format="JPEG", quality=PREVIEW_JPEG_QUALITY)
        atomic_write_bytes(path, buffer.getvalue())

    def _caption(self, index: int) -> str:
        name = self._video.frame_names[index]
        if index not in self._scores:
            return f"{name}  no answer"
        score = self._scores[index]
        return f"{name}  no [SEG]" if score is None else f"{name}  [SEG] IoU {score:.2f}"

    def _draw_strip(self, strip: np.ndarray) -> None:
        """Per-frame bars in `strip` (a view of the sheet's bottom band), [SEG] bars first, then no-[SEG]."""
        width = strip.shape[1]
        total = self._video.num_frames
        answered = sum(score is not None for score in self._scores.values())
        title = f"[SEG] + predicted IoU: {answered}/{total} frames"
        _text(strip, title, 4, _STRIP_TITLE_HEIGHT - 4)
        bottom = strip.shape[0] - 2
        bar_height = bottom - _STRIP_TITLE_HEIGHT - 4  # pixels for IoU 1; 4 rows above for the ticks

        def span(index: int) -> tuple[int, int]:
            start = index * width // total
            return start, max(start + 1, (index + 1) * width // total)

        for index, score in sorted(self._scores.items(), key=lambda item: item[1] is None):
            left, right = span(index)
            if score is None:
                strip[bottom - bar_height : bottom, left:right] = _NO_SEG_BAR
            else:
                height = round(min(max(score, 0.0), 1.0) * bar_height)
                strip[bottom - height : bottom, left:right] = _SEG_BAR
        for index in self.frame_indices:
            left, right = span(index)
            strip[_STRIP_TITLE_HEIGHT : _STRIP_TITLE_HEIGHT + 3, left:right] = _TICK


def _text(image: np.ndarray, text: str, x: int, baseline: int) -> None:
    cv2.putText(image, text, (x, baseline), _FONT, _FONT_SCALE, _TEXT, 1, cv2.LINE_AA)
