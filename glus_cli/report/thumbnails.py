"""Worst frames of each scored expression as prediction | ground truth | difference JPEG thumbnails.

For every expression of the ground truth that has a prediction folder, the frames are ranked by J (region
IoU, the per-frame values `glus_cli.evaluation.evaluate` averages, `ExpressionScore.frame_j`) and the
`WORST_COUNT` lowest below 1 are drawn, each as one JPEG of three panels `THUMB_HEIGHT` pixels high (only
those frames are read again):

- the prediction and the ground truth, white on dark grey;
- their difference: both (green), predicted only (red, a false positive), truth only (blue, a miss).

They go to ``report_files/worst/<video>/<exp_id>/<frame>.jpg`` in the run folder, listed with their J in
``report_files/worst_frames.json``. They are made once: an expression already listed, with its files
present, is not read again, so a rebuilt report costs nothing here.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from glus_cli.errors import GlusError
from glus_cli.evaluation import FrameMasks, paired_masks
from glus_cli.ground_truth import ExpressionTask
from glus_cli.json_files import read_json_object
from glus_cli.outputs import atomic_write_bytes, write_json_atomic
from glus_cli.report.gather import REPORT_FILES_DIR, url
from glus_cli.safe_names import child_path

logger = logging.getLogger(__name__)

WORST_DIR = "worst"
WORST_INDEX = "worst_frames.json"
WORST_COUNT = 3
THUMB_HEIGHT = 120
"""Height of each panel in pixels; the width keeps the mask's aspect ratio."""
GAP = 4
BACKGROUND = np.array((40, 40, 46), np.uint8)
FOREGROUND = np.array((235, 235, 235), np.uint8)
BOTH = np.array((60, 190, 90), np.uint8)
PREDICTED_ONLY = np.array((230, 60, 50), np.uint8)
TRUTH_ONLY = np.array((60, 120, 240), np.uint8)

Worst = dict[tuple[str, str], list[dict[str, Any]]]
"""(video, exp_id) -> ``[{"frame", "J", "src"}]``, worst first, `src` relative to the run folder."""


def read_worst(root: Path) -> Worst:
    """The thumbnails already made for the run in `root` (none when the index is absent or unreadable)."""
    path = root / REPORT_FILES_DIR / WORST_INDEX
    if not path.is_file():
        return {}
    try:
        document = read_json_object(path, what="worst-frame index ")
    except GlusError as error:
        logger.warning("%s", error)
        return {}
    worst: Worst = {}
    for key, items in document.items():
        video, _, exp_id = key.rpartition("/")
        if isinstance(items, list):
            worst[video, exp_id] = [item for item in items if isinstance(item, dict)]
    return worst


def make_worst_frames(
    root: Path,
    predictions: Path,
    tasks: Iterable[ExpressionTask],
    frame_j: Mapping[tuple[str, str], Sequence[float]],
    *,
    progress: Callable[[int], None] | None = None,
) -> Worst:
    """Draw the worst frames of each task with a prediction folder, once, into `root`; return them all.

    Args:
        root: the run folder.
        predictions: its predictions ``<video>/<exp_id>/<frame>.png`` (`root`, or its ``masks/``).
        tasks: the ground truth's expressions (`glus_cli.ground_truth.load_ground_truth`).
        frame_j: (video, exp_id) -> J of each of the task's frames, as `glus_cli.evaluation.evaluate`
            measured them; a task without them gets no thumbnails.
        progress: called with the number of expressions handled so far.

    Raises:
        InputError: a name from the ground truth cannot be a folder, or a mask has the wrong size.
        OutputError: a thumbnail or the index cannot be written.
    """
    worst = read_worst(root)
    base = root / REPORT_FILES_DIR / WORST_DIR
    changed = False
    for done, task in enumerate(tasks, start=1):
        key = (task.video, task.exp_id)
        folder = child_path(
            predictions, task.video, task.exp_id, source="the ground truth", entry="expression"
        )
        values = frame_j.get(key, ())
        if folder.is_dir() and len(values) == len(task.frames) and not _made(root, worst.get(key)):
            target = child_path(base, task.video, task.exp_id, source="the ground truth", entry="expression")
            worst[key] = _draw_expression(root, task, values, folder, target)
            changed = True
        if progress is not None:
            progress(done)
    if changed:
        document = {f"{video}/{exp_id}": items for (video, exp_id), items in worst.items()}
        (root / REPORT_FILES_DIR).mkdir(exist_ok=True)
        write_json_atomic(root / REPORT_FILES_DIR / WORST_INDEX, document)
    return worst


def _made(root: Path, items: list[dict[str, Any]] | None) -> bool:
    """Whether an expression's thumbnails are listed and on disk."""
    if items is None:
        return False
    return all((root / Path(*str(item.get("file", "")).split("/"))).is_file() for item in items)


def _draw_expression(
    root: Path, task: ExpressionTask, frame_j: Sequence[float], folder: Path, target: Path
) -> list[dict[str, Any]]:
    """Draw the expression's frames of lowest J, return their index entries."""
    ranked = sorted(zip(frame_j, range(len(frame_j)), task.frames, strict=True))
    chosen = [(j, frame) for j, _, frame in ranked[:WORST_COUNT] if j < 1.0]
    if not chosen:
        return []
    target.mkdir(parents=True, exist_ok=True)
    by_frame = {masks.frame: masks for masks in paired_masks(task, folder, [frame for _, frame in chosen])}
    items = []
    for j, frame in chosen:
        path = child_path(target, f"{frame}.jpg", source="the ground truth", entry="frame")
        atomic_write_bytes(path, _jpeg(_panels(by_frame[frame])))
        relative = path.relative_to(root)
        items.append({"frame": frame, "J": j, "file": relative.as_posix(), "src": url(relative)})
    return items


def _panels(masks: FrameMasks) -> np.ndarray:
    """Prediction | truth | difference, RGB, each `THUMB_HEIGHT` high."""
    prediction, truth = _pair(masks)
    height, width = prediction.shape
    panels = [
        np.where(prediction[..., None], FOREGROUND, BACKGROUND),
        np.where(truth[..., None], FOREGROUND, BACKGROUND),
        _difference(prediction, truth),
    ]
    scaled_width = max(1, round(width * THUMB_HEIGHT / height))
    resized = [
        np.asarray(Image.fromarray(panel).resize((scaled_width, THUMB_HEIGHT), Image.Resampling.NEAREST))
        for panel in panels
    ]
    gap = np.full((THUMB_HEIGHT, GAP, 3), 255, np.uint8)
    return np.concatenate([resized[0], gap, resized[1], gap, resized[2]], axis=1)


def _pair(masks: FrameMasks) -> tuple[np.ndarray, np.ndarray]:
    """Both masks as bool arrays of one size (an absent side is empty)."""
    prediction, truth = masks.prediction, masks.truth
    if prediction is None and truth is None:
        empty = np.zeros((THUMB_HEIGHT, THUMB_HEIGHT), bool)
        return empty, empty
    if prediction is None:
        prediction = np.zeros(truth.shape, bool)  # type: ignore[union-attr]
    if truth is None:
        truth = np.zeros(prediction.shape, bool)
    return prediction.astype(bool), truth.astype(bool)


def _difference(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Green where both, red where only predicted, blue where only true, background elsewhere."""
    image = np.empty((*prediction.shape, 3), np.uint8)
    image[:] = BACKGROUND
    image[prediction & truth] = BOTH
    image[prediction & ~truth] = PREDICTED_ONLY
    image[~prediction & truth] = TRUTH_ONLY
    return image


def _jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()
