"""Build a run folder's ``report.html``: scores from ``eval.json`` or a ground truth, thumbnails, the page."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from glus_cli.errors import InputError
from glus_cli.evaluation import EvaluationResult, evaluate
from glus_cli.ground_truth import Layout, load_ground_truth
from glus_cli.json_files import read_json_object
from glus_cli.keyframes import MASKS_DIR
from glus_cli.report.gather import EVAL_NAME, Evaluation, Scores, find_expressions, gather
from glus_cli.report.page import write_page
from glus_cli.report.thumbnails import Worst, make_worst_frames, read_worst

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroundTruth:
    """Where a run's ground truth is, as `glus eval` takes it."""

    root: Path
    layout: Layout | None = None
    meta: Path | None = None


def predictions_root(root: Path) -> Path:
    """Where a run folder's predictions ``<video>/<exp_id>/<frame>.png`` are (``masks/`` for keyframes)."""
    return root / MASKS_DIR if find_expressions(root)[0] == "keyframes" else root


def from_result(result: EvaluationResult) -> Evaluation:
    """The report's view of a `glus eval` result: the very floats `eval.json` holds."""
    overall = result.overall
    return Evaluation(
        result.layout.value,
        Scores(overall.j, overall.f, overall.jf, 2),
        overall.n_expressions,
        {
            (score.video, score.exp_id): (score.expression, Scores(score.j, score.f, score.jf, 1))
            for score in result.per_expression
        },
        list(result.warnings),
    )


def write_report(
    root: Path,
    *,
    result: EvaluationResult | None = None,
    ground_truth: GroundTruth | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write ``root/report.html`` for the run folder `root` and return its path.

    The scores are `result` when given (`glus eval` has just computed them); else, with `ground_truth`,
    computed by `glus_cli.evaluation.evaluate` as `glus eval` does; else read from ``root/eval.json`` when
    present. With a ground truth the worst-frame thumbnails are drawn (once, see
    `glus_cli.report.thumbnails`); without, those already drawn are shown. No mask or record is changed.

    Args:
        root: the run folder.
        result: scores `glus eval` computed for the predictions in `root`.
        ground_truth: the dataset to score against and draw the worst frames from.
        workers: processes for the scoring (as `glus eval --workers`).
        progress: called as ``progress(done, total)`` while scoring and drawing.

    Raises:
        InputError: `root` is not a folder, or its ground truth or ``eval.json`` cannot be read.
        OutputError: the page or a thumbnail cannot be written.
    """
    if not root.is_dir():
        raise InputError(f"{root} is not a folder")
    started = time.perf_counter()
    worst = read_worst(root)
    if ground_truth is not None:
        predictions = predictions_root(root)
        if result is None:
            result = evaluate(
                predictions,
                ground_truth.root,
                layout=ground_truth.layout,
                meta_path=ground_truth.meta,
                workers=workers,
                progress=progress,
            )
        worst = _worst_frames(root, predictions, ground_truth, result, progress)
    if result is not None:
        evaluation: Evaluation | None = from_result(result)
    elif (root / EVAL_NAME).is_file():
        evaluation = Evaluation.from_document(read_json_object(root / EVAL_NAME), root / EVAL_NAME)
    else:
        evaluation = None
    path = write_page(root, gather(root, evaluation, worst))
    logger.info("wrote %s in %.2f s", path, time.perf_counter() - started)
    return path


def _worst_frames(
    root: Path,
    predictions: Path,
    ground_truth: GroundTruth,
    result: EvaluationResult,
    progress: Callable[[int, int], None] | None,
) -> Worst:
    """Draw the worst frames `result` found (those not drawn yet) from the ground truth's masks."""
    _, tasks = load_ground_truth(ground_truth.root, layout=ground_truth.layout, meta_path=ground_truth.meta)
    frame_j = {(score.video, score.exp_id): score.frame_j for score in result.per_expression}
    total = len(tasks)
    return make_worst_frames(
        root,
        predictions,
        tasks,
        frame_j,
        progress=None if progress is None else lambda done: progress(done, total),
    )
