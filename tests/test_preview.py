"""preview.jpg: the contact sheet's frames, layout, tint, per-frame strip and atomic write."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from glus_cli.preview import (
    PREVIEW_CAPTION_HEIGHT,
    PREVIEW_COLUMNS,
    PREVIEW_STRIP_HEIGHT,
    PREVIEW_TILE_WIDTH,
    PreviewSheet,
    preview_frame_indices,
)
from glus_cli.protocol import FrameResult
from glus_cli.testing.videos import synthetic_mask, write_frame_folder
from glus_cli.video import VideoSource, open_video

SIZE = (97, 131)
NUM_FRAMES = 11
NO_SEG_FRAME = 7
TILE_HEIGHT = round(PREVIEW_TILE_WIDTH * SIZE[0] / SIZE[1])  # 237
STRIP_TOP = 2 * (TILE_HEIGHT + PREVIEW_CAPTION_HEIGHT)  # two rows of three tiles


@pytest.fixture
def frames(tmp_path: Path) -> Iterator[VideoSource]:
    """PNG frames, so the tiles can be compared with the source's pixels."""
    with open_video(write_frame_folder(tmp_path / "bear", NUM_FRAMES, SIZE, ext="png")) as source:
        yield source


def _result(index: int, *, is_seg: bool = True, iou: float = 0.5) -> FrameResult:
    mask = synthetic_mask(index, SIZE) if is_seg else np.zeros(SIZE, bool)
    score, object_score = (iou, 1.0) if is_seg else (None, None)
    return FrameResult(0, index, index, "forward", mask, is_seg, score, object_score)


def _sheet(frames: VideoSource) -> tuple[PreviewSheet, np.ndarray]:
    sheet = PreviewSheet(frames)
    for index in range(NUM_FRAMES):
        sheet.add(_result(index, is_seg=index != NO_SEG_FRAME, iou=index / (NUM_FRAMES - 1)))
    return sheet, sheet.render()


def test_frame_indices_are_evenly_spaced() -> None:
    assert preview_frame_indices(1) == [0]
    assert preview_frame_indices(3) == [0, 1, 2]
    assert preview_frame_indices(11) == [0, 2, 4, 6, 8, 10]
    assert preview_frame_indices(100) == [0, 20, 40, 59, 79, 99]


def test_layout_size(frames: VideoSource) -> None:
    sheet, image = _sheet(frames)
    assert sheet.frame_indices == [0, 2, 4, 6, 8, 10]
    assert image.shape == (STRIP_TOP + PREVIEW_STRIP_HEIGHT, PREVIEW_COLUMNS * PREVIEW_TILE_WIDTH, 3)


def test_few_frames_make_a_narrower_sheet(tmp_path: Path) -> None:
    with open_video(write_frame_folder(tmp_path / "two", 2, SIZE, ext="png")) as source:
        sheet = PreviewSheet(source)
        sheet.add(_result(0))
        image = sheet.render()  # frame 1 has no answer: untinted, and no bar
    height = TILE_HEIGHT + PREVIEW_CAPTION_HEIGHT + PREVIEW_STRIP_HEIGHT
    assert image.shape == (height, 2 * PREVIEW_TILE_WIDTH, 3)


@pytest.mark.parametrize("slot", [1, 4])
def test_tiles_show_the_tint_where_the_mask_is(frames: VideoSource, slot: int) -> None:
    sheet, image = _sheet(frames)
    index = sheet.frame_indices[slot]
    top = (slot // PREVIEW_COLUMNS) * (TILE_HEIGHT + PREVIEW_CAPTION_HEIGHT)
    left = (slot % PREVIEW_COLUMNS) * PREVIEW_TILE_WIDTH
    tile = image[top : top + TILE_HEIGHT, left : left + PREVIEW_TILE_WIDTH].astype(int)
    original = cv2.resize(frames.read(index), (PREVIEW_TILE_WIDTH, TILE_HEIGHT)).astype(int)
    mask = cv2.resize(synthetic_mask(index, SIZE).astype(np.uint8), (PREVIEW_TILE_WIDTH, TILE_HEIGHT)) > 0
    kernel = np.ones((15, 15), np.uint8)
    inside = cv2.erode(mask.astype(np.uint8), kernel).astype(bool)  # away from the contour line
    outside = ~cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
    assert inside.sum() > 500
    tinted = original * 0.5 + np.array([255, 0, 0]) * 0.5
    assert np.abs(tile[inside] - tinted[inside]).max() <= 3
    assert np.abs(tile[outside] - original[outside]).max() <= 3


def test_strip_shows_answers_and_scores(frames: VideoSource) -> None:
    _, image = _sheet(frames)
    strip = image[STRIP_TOP:].astype(int)
    width = strip.shape[1]
    bottom_row = strip[-3]

    def column(index: int) -> np.ndarray:
        return strip[:, (2 * index + 1) * width // (2 * NUM_FRAMES)]  # the middle of frame `index`'s span

    amber, green = np.array([235, 165, 40]), np.array([60, 190, 90])
    assert np.abs(column(NO_SEG_FRAME)[-3] - amber).max() <= 1  # no [SEG]: an amber bar
    assert np.abs(column(NO_SEG_FRAME)[30] - amber).max() <= 1  # ... of full height
    assert np.abs(bottom_row[(2 * 10 + 1) * width // 22] - green).max() <= 1  # [SEG]: green
    heights = [int((np.abs(column(index) - green).max(axis=1) <= 1).sum()) for index in (1, 5, 10)]
    assert 0 < heights[0] < heights[1] < heights[2]  # bars grow with the predicted IoU
    assert heights[2] == pytest.approx(2 * heights[1], abs=2)


def test_a_frame_answered_twice_keeps_the_last_answer(frames: VideoSource) -> None:
    sheet = PreviewSheet(frames)
    sheet.add(_result(4, is_seg=False))
    sheet.add(_result(4, iou=0.9))  # the key frame's backward pass
    image = sheet.render()
    top, left = 0, 2 * PREVIEW_TILE_WIDTH  # frame 4 is the third tile
    tile = image[top : top + TILE_HEIGHT, left : left + PREVIEW_TILE_WIDTH].astype(int)
    original = cv2.resize(frames.read(4), (PREVIEW_TILE_WIDTH, TILE_HEIGHT)).astype(int)
    assert (tile[..., 0] - original[..., 0]).max() > 40  # tinted: the second answer's mask


def test_write_is_an_atomic_jpeg(frames: VideoSource, tmp_path: Path) -> None:
    sheet, image = _sheet(frames)
    target = tmp_path / "out" / "preview.jpg"
    target.parent.mkdir()
    sheet.write(target)
    assert [path.name for path in target.parent.iterdir()] == ["preview.jpg"]
    with Image.open(target) as written:
        assert written.format == "JPEG"
        assert written.size == (image.shape[1], image.shape[0])
        assert np.abs(np.asarray(written).astype(int) - image).mean() < 4
