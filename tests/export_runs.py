"""Run folders for the `glus export` tests: one written by hand with known masks, one by the tiny model.

The hand-made run has the layout of a ``glus batch`` output:

- ``cats`` (3 frames, 40x60, PNG masks): expression ``0`` "the ring" is a ring (a mask with a hole);
  expression ``1`` "two blobs" has two separate parts, overlaps the ring in frame 1 with a higher
  predicted IoU, and has no ``[SEG]`` in frame 2 (a blank mask);
- ``dogs`` (2 frames, odd size 37x53, masks in ``masks_rle.json`` only): expression ``7`` "the ring", a
  disc in frame 0 and a smaller disc with predicted IoU 0.3 and object score -2 in frame 1.

The model-made run is a real ``glus batch`` of the tiny checkpoint over two videos (one odd-sized) with two
expressions each, where the model is made to answer without ``[SEG]`` in one frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

import glus_cli.pipeline as pipeline
from glus_cli.cli.app import app
from glus_cli.confidence import CONFIDENCE_NAME, FrameConfidence
from glus_cli.model.mllm import SegDecision
from glus_cli.testing.checkpoint import build_checkpoint
from glus_cli.testing.videos import write_frame_folder

CATS_SIZE = (40, 60)
DOGS_SIZE = (37, 53)


@dataclass(frozen=True)
class KnownMask:
    """One frame of one expression of the hand-made run."""

    video: str
    exp_id: str
    frame: str
    mask: np.ndarray
    seg: bool
    predicted_iou: float | None
    object_score: float | None


def ring(size: tuple[int, int], centre: tuple[int, int], outer: int, inner: int) -> np.ndarray:
    """A filled disc of radius `outer` with a hole of radius `inner`."""
    mask = np.zeros(size, np.uint8)
    cv2.circle(mask, centre, outer, 1, -1)
    if inner:
        cv2.circle(mask, centre, inner, 0, -1)
    return mask.astype(bool)


def two_blobs(size: tuple[int, int], shift: int) -> np.ndarray:
    """Two separate rectangles."""
    mask = np.zeros(size, bool)
    mask[4:14, 2 + shift : 12 + shift] = True
    mask[26:36, 40:56] = True
    return mask


def known_masks() -> list[KnownMask]:
    """Every frame of every expression of the hand-made run."""
    masks = []
    for index in range(3):
        frame = f"{index:05d}"
        masks.append(KnownMask("cats", "0", frame, ring(CATS_SIZE, (30, 20), 14, 6), True, 0.9, 3.0))
        if index < 2:
            blobs = two_blobs(CATS_SIZE, shift=12 * index)  # frame 1: the first blob overlaps the ring
            masks.append(KnownMask("cats", "1", frame, blobs, True, 0.95, 2.0))
        else:
            masks.append(KnownMask("cats", "1", frame, np.zeros(CATS_SIZE, bool), False, None, None))
    masks.append(KnownMask("dogs", "7", "00000", ring(DOGS_SIZE, (26, 18), 10, 0), True, 0.8, 1.0))
    masks.append(KnownMask("dogs", "7", "00001", ring(DOGS_SIZE, (26, 18), 5, 0), True, 0.3, -2.0))
    return masks


TEXTS = {("cats", "0"): "the ring", ("cats", "1"): "two blobs", ("dogs", "7"): "the ring"}


def write_handmade_run(root: Path) -> Path:
    """Write the frames under ``root/frames`` and the run under ``root/run``; return the run folder."""
    frames, run = root / "frames", root / "run"
    write_frame_folder(frames / "cats", 3, size=CATS_SIZE, ext="png")
    write_frame_folder(frames / "dogs", 2, size=DOGS_SIZE)
    summary = {"command": "batch", "input": str(frames), "options": {"stride": 1, "max_frames": None}}
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps(summary))
    masks = known_masks()
    for (video, exp_id), text in TEXTS.items():
        folder = run / video / exp_id
        folder.mkdir(parents=True)
        mine = [m for m in masks if (m.video, m.exp_id) == (video, exp_id)]
        if video == "dogs":
            document = {}
            for m in mine:
                rle = mask_utils.encode(np.asfortranarray(m.mask, dtype=np.uint8))
                document[m.frame] = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
            (folder / "masks_rle.json").write_text(json.dumps(document))
        else:
            for m in mine:
                Image.fromarray(m.mask.astype(np.uint8) * 255).save(folder / f"{m.frame}.png")
        record = {
            "exp_id": exp_id,
            "text": text,
            "output_dir": str(folder),
            "keyframe": None,
            "num_frames": len(mine),
            "frames_without_seg": [m.frame for m in mine if not m.seg],
            "mean_predicted_iou": None,
            "seconds": 0.0,
            "overlay": None,
        }
        FrameConfidence(
            [m.frame for m in mine], [m.predicted_iou for m in mine], [m.object_score for m in mine]
        ).write(folder / CONFIDENCE_NAME)
        (folder / "expression.json").write_text(json.dumps(record))
    return run


MODEL_VIDEOS = {"even": (48, 64), "odd": (37, 53)}
MODEL_EXPRESSIONS = {"even": ("the red circle", "the green square"), "odd": ("the red circle", "a square")}
NO_SEG = ("odd", 0, 1)
"""(video, expression index, frame index) where the model is made to answer without [SEG]."""


def write_model_run(root: Path) -> Path:
    """Run ``glus batch`` with the tiny checkpoint (frames under ``root/frames``); return the run folder."""
    checkpoint = build_checkpoint(root / "ckpt").path
    frames = root / "frames"
    for video, size in MODEL_VIDEOS.items():
        write_frame_folder(frames / video, 3, size=size)
    expressions = {video: list(texts) for video, texts in MODEL_EXPRESSIONS.items()}
    (root / "expressions.json").write_text(json.dumps(expressions))
    original = pipeline._segment_frame

    def one_frame_without_seg(model, decision, features, bank, frame_size, expression, frame, *rest):  # type: ignore[no-untyped-def]
        if (frame_size, expression, frame) == (MODEL_VIDEOS[NO_SEG[0]], NO_SEG[1], NO_SEG[2]):
            decision = SegDecision(token_id=decision.token_id, is_seg=False, embedding=None)
        return original(model, decision, features, bank, frame_size, expression, frame, *rest)

    run = root / "run"
    args = [
        "batch",
        str(frames),
        "-e",
        str(root / "expressions.json"),
        "-o",
        str(run),
        "--model",
        str(checkpoint),
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline, "_segment_frame", one_frame_without_seg)
        result = CliRunner().invoke(app, [*args, "--device", "cpu", "--quiet", "--dtype", "float32"])
    assert result.exit_code == 0, result.output
    return run
