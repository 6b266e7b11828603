"""Run folders of `glus batch`'s layout written without a model, for the report's tests and benchmark.

`write_batch_run` lays out ``OUT/<video>/<exp_id>/`` as `glus_cli.runner.segment_to_outputs` does: the
mask PNGs (optional: a benchmark of thousands of expressions needs only the records), ``confidence.json``,
``preview.jpg``, optionally one shared ``overlay.mp4`` file copied in, and ``expression.json`` last; then
``summary.json``. The masks are the synthetic red circle, shifted a little in some frames so that the
scores vary; `write_truth_tree` writes the matching ground truth as a mask tree.
"""

from __future__ import annotations

import io
import json
import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from glus_cli.confidence import CONFIDENCE_NAME, FrameConfidence
from glus_cli.outputs import OVERLAY_FILENAME
from glus_cli.preview import PREVIEW_FILENAME
from glus_cli.runner import RECORD_NAME, ExpressionOutcome
from glus_cli.testing.videos import synthetic_frame, synthetic_mask


def frame_names(num_frames: int) -> list[str]:
    """MeViS-style frame names ``00000``, ``00001``, ..."""
    return [f"{index:05d}" for index in range(num_frames)]


def predicted_mask(video_index: int, exp_index: int, frame: int, size: tuple[int, int]) -> np.ndarray:
    """The fake prediction: the circle's silhouette, shifted right by a few pixels in some frames."""
    mask = synthetic_mask(frame, size)
    shift = (video_index + 2 * exp_index + frame) % 5
    return np.roll(mask, shift * 2, axis=1)


def no_seg(video_index: int, exp_index: int, frame: int) -> bool:
    """Whether the fake model gave no ``[SEG]`` at this frame (one frame in eleven, varying)."""
    return (video_index * 7 + exp_index * 3 + frame) % 11 == 0


def write_batch_run(
    root: Path,
    expressions: Mapping[str, Sequence[str]],
    *,
    num_frames: int = 8,
    size: tuple[int, int] = (48, 64),
    masks: bool = True,
    overlay: Path | None = None,
    summary: bool = True,
) -> Path:
    """Write a finished `glus batch` run folder under `root` and return it.

    Args:
        root: the run folder (created).
        expressions: video name -> expression texts (exp ids 0, 1, ...).
        num_frames: frames per video.
        size: (H, W) of the masks.
        masks: write the mask PNGs (a report benchmark can do without).
        overlay: an H.264 file to copy in as each expression's overlay video.
        summary: write ``summary.json`` (without, the run looks unfinished).
    """
    names = frame_names(num_frames)
    preview = _preview_jpeg(size)
    outcomes = []
    for video_index, (video, texts) in enumerate(expressions.items()):
        for exp_index, text in enumerate(texts):
            folder = root / video / str(exp_index)
            folder.mkdir(parents=True, exist_ok=True)
            scores: dict[int, tuple[float | None, float | None]] = {}
            for frame in range(num_frames):
                if no_seg(video_index, exp_index, frame):
                    mask = np.zeros(size, bool)
                else:
                    mask = predicted_mask(video_index, exp_index, frame, size)
                    wave = math.sin(0.7 * frame + video_index + exp_index)
                    scores[frame] = (round(0.72 + 0.2 * wave, 4), round(3.0 + 4.0 * wave, 4))
                if masks:
                    Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{names[frame]}.png")
            FrameConfidence.from_scores(names, scores).write(folder / CONFIDENCE_NAME)
            (folder / PREVIEW_FILENAME).write_bytes(preview)
            record = None
            if overlay is not None:
                shutil.copyfile(overlay, folder / OVERLAY_FILENAME)
                record = {"file": OVERLAY_FILENAME, "codec": "h264", "container": "mp4"}
            ious = [iou for iou, _ in scores.values() if iou is not None]
            outcome = ExpressionOutcome(
                str(exp_index),
                text,
                str(folder),
                None,
                num_frames,
                [names[f] for f in range(num_frames) if f not in scores],
                sum(ious) / len(ious) if ious else None,
                round(0.05 * num_frames + 0.01 * exp_index, 3),
                record,
            )
            (folder / RECORD_NAME).write_text(json.dumps(asdict(outcome), indent=2))
            outcomes.append(asdict(outcome))
    if summary:
        document = {"command": "batch", "input": "synthetic", "failures": [], "outcomes": outcomes}
        (root / "summary.json").write_text(json.dumps(document))
    return root


def write_truth_tree(
    root: Path,
    expressions: Mapping[str, Sequence[str]],
    *,
    num_frames: int = 8,
    size: tuple[int, int] = (48, 64),
) -> Path:
    """The ground truth of `write_batch_run`'s videos as a mask tree ``<video>/<exp_id>/<frame>.png``,
    with a ``meta_expressions.json`` giving the texts; return `root`."""
    names = frame_names(num_frames)
    meta: dict = {"videos": {}}
    for video, texts in expressions.items():
        exps = {}
        for exp_index, text in enumerate(texts):
            folder = root / video / str(exp_index)
            folder.mkdir(parents=True, exist_ok=True)
            for frame, name in enumerate(names):
                truth = synthetic_mask(frame, size).astype(np.uint8) * 255
                Image.fromarray(truth).save(folder / f"{name}.png")
            exps[str(exp_index)] = {"exp": text}
        meta["videos"][video] = {"expressions": exps, "frames": names}
    (root / "meta_expressions.json").write_text(json.dumps(meta))
    return root


def _preview_jpeg(size: tuple[int, int]) -> bytes:
    """A small stand-in contact sheet."""
    buffer = io.BytesIO()
    Image.fromarray(synthetic_frame(0, size)).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()
