"""Key frames: GLUS's key-frame pseudo-labels (paper §3.4, official `kfs/`), produced over a dataset.

GLUS-S runs a forward pass from a key frame and a backward pass to frame 0. Its key-frame selector is
trained on pseudo-labels that GLUS itself produces: for each (video, expression), the frame whose
predicted mask has the highest IoU with the ground truth. This module

- scores every frame of a (video, expression) by that IoU (`ground_truth_scores`), or, without ground
  truth, by the model's own confidence (`confidence`: SAM2's predicted IoU times the sigmoid of its
  object score; 0 where the LLM gave no ``[SEG]``);
- writes the official score file and a richer JSON with every per-frame score
  (`glus_cli.keyframe_files`, which also reads them back);
- runs the whole procedure over a dataset (`run_keyframes`, behind `glus keyframes`): GLUS on every
  pending (video, expression) with SAM2's confidence kept beside the masks, then the scores and files,
  and with ground truth the KFS selector's training labels (`glus_cli.kfs_labels`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from glus_cli import __version__
from glus_cli.batch import BatchHooks, BatchReport, VideoTask, expression_folder, run_batch
from glus_cli.confidence import CONFIDENCE_NAME, FrameConfidence
from glus_cli.errors import InputError
from glus_cli.evaluation import paired_masks
from glus_cli.ground_truth import ExpressionTask, Layout, load_ground_truth
from glus_cli.keyframe_files import (
    DETAILS_FILE,
    SCORE_FILE,
    KeyframeRecord,
    Ranking,
    write_keyframe_files,
)
from glus_cli.kfs_labels import LABELS_DIR, LabelReport, write_labels
from glus_cli.resume import is_complete
from glus_cli.runner import Expression

if TYPE_CHECKING:
    from glus_cli.model.glus import GlusModel
    from glus_cli.protocol import SegmentationOptions
    from glus_cli.video import VideoSource

MASKS_DIR = "masks"
"""Where `run_keyframes` writes the masks: ``OUT/masks/<video>/<exp_id>/<frame>.png``."""


def ground_truth_scores(
    gt_root: Path, *, layout: Layout | str | None = None, meta_path: Path | None = None
) -> GroundTruthScorer:
    """A scorer of predicted masks against the ground truth under `gt_root` (layouts as `glus eval`).

    Raises:
        InputError: the ground truth is missing or malformed.
    """
    _, tasks = load_ground_truth(gt_root, layout=layout, meta_path=meta_path)
    return GroundTruthScorer({(task.video, task.exp_id): task for task in tasks})


class GroundTruthScorer:
    """Per-frame IoU of written prediction PNGs with the ground truth of their expression."""

    def __init__(self, tasks: Mapping[tuple[str, str], ExpressionTask]) -> None:
        self._tasks = tasks

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._tasks

    def require(self, tasks: Sequence[VideoTask]) -> None:
        """Check that every expression of `tasks` has ground truth (before any model runs).

        Raises:
            InputError: some have none; the message counts them and names the first.
        """
        unknown = [
            f"{task.name}/{exp.exp_id}"
            for task in tasks
            for exp in task.expressions
            if (task.name, exp.exp_id) not in self
        ]
        if unknown:
            raise InputError(f"{len(unknown)} expressions have no ground truth (first: {unknown[0]})")

    def frames(self, video: str, exp_id: str) -> tuple[str, ...]:
        """The frames the ground truth lists for (video, expression), in its order (the meta file's).

        Raises:
            InputError: the expression has no ground truth.
        """
        return self._task(video, exp_id).frames

    def frame_ious(self, folder: Path, video: str, exp_id: str, frames: Sequence[str]) -> list[float]:
        """IoU of ``folder/<frame>.png`` with the ground truth, for each of `frames` (empty vs empty: 1).

        Raises:
            InputError: the expression or one of its frames has no ground truth, a mask is missing or
                unreadable, or its size is not the ground truth's.
        """
        ious = []
        for masks in paired_masks(self._task(video, exp_id), folder, frames):
            if masks.prediction is None:
                raise InputError(f"{masks.path} is missing")
            ious.append(masks.region_similarity())
        return ious

    def _task(self, video: str, exp_id: str) -> ExpressionTask:
        task = self._tasks.get((video, exp_id))
        if task is None:
            raise InputError(f"the ground truth has no expression {exp_id} of video {video}")
        return task


@dataclass(frozen=True)
class KeyframeRun:
    """What `run_keyframes` did and wrote.

    Attributes:
        records: one per (video, expression) of the videos that did not fail, in task order.
        ranking: what the scores measure.
        report: the batch run's report (skipped, done and failed videos).
        score_path: the official score file written.
        details_path: the per-frame details file written.
        labels: the KFS training labels written (`glus_cli.kfs_labels`); None without ground truth.
    """

    records: list[KeyframeRecord]
    ranking: Ranking
    report: BatchReport
    score_path: Path
    details_path: Path
    labels: LabelReport | None = None


def run_keyframes(
    model: GlusModel | None,
    tasks: Sequence[VideoTask],
    out: Path,
    options: SegmentationOptions,
    *,
    scorer: GroundTruthScorer | None = None,
    stride: int = 1,
    max_frames: int | None = None,
    on_video: Callable[[VideoTask, VideoSource, list[Expression]], Callable[[int], None]] | None = None,
) -> KeyframeRun:
    """Run GLUS on every (video, expression) of `tasks`, score each frame, and write the key-frame files.

    The masks and each expression's `CONFIDENCE_NAME` go to ``out/masks/<video>/<exp_id>/``; a rerun
    into the same `out` skips the expressions that have both (and, without ground truth, reranks them
    from the stored confidence). With ground truth, the KFS training labels of every expression whose
    frames were all segmented go to ``out/kfs_labels/<video>/<exp_id>.json`` (`glus_cli.kfs_labels`);
    without, that folder is left as it is. A video that fails is reported and left out of the files.

    Args:
        model: the loaded GLUS model; None when every expression of `tasks` is complete (the files are
            rewritten from the stored confidence, and the details name no model).
        tasks: the videos and their expressions (`glus_cli.batch.plan_tasks`).
        out: the output folder (must exist): `SCORE_FILE`, `DETAILS_FILE`, `MASKS_DIR` and `LABELS_DIR`
            go there.
        options: protocol settings.
        scorer: ground truth to rank frames by IoU with (`ground_truth_scores`); None ranks them by the
            model's own `confidence`, which is not the paper's pseudo-label.
        stride: keep every `stride`-th frame of each video.
        max_frames: keep at most this many frames (after `stride`).
        on_video: progress callback, as `glus_cli.batch.BatchHooks.on_video`.

    Returns:
        The records, the ranking, the batch report, the paths written and the labels.

    Raises:
        InputError: with a `scorer`, an expression has no ground truth (checked before anything runs).
    """
    if scorer is not None:
        scorer.require(tasks)
    masks = out / MASKS_DIR
    if model is None:
        if any(
            not has_confidence(expression_folder(masks, task.name, exp.exp_id))
            for task in tasks
            for exp in task.expressions
        ):
            raise ValueError("run_keyframes needs a model: some expressions are not complete")
        report = BatchReport.all_skipped(tasks)
    else:
        report = run_batch(
            model,
            tasks,
            masks,
            ["png"],
            options,
            stride=stride,
            max_frames=max_frames,
            hooks=BatchHooks(has_confidence, on_video),  # `segment_to_outputs` writes the confidence
        )
    failed = {failure.video for failure in report.failures}
    records = [
        _record(expression_folder(masks, task.name, exp.exp_id), task.name, exp, scorer)
        for task in tasks
        if task.name not in failed
        for exp in task.expressions
    ]
    ranking: Ranking = "model_confidence" if scorer is None else "ground_truth_iou"
    provenance = {
        "glus_cli_version": __version__,
        "model": None if model is None else asdict(model.info),
        "options": {**asdict(options), "stride": stride, "max_frames": max_frames},
        "failures": [asdict(failure) for failure in report.failures],
    }
    labels = None
    if scorer is not None:
        labels = write_labels(out / LABELS_DIR, records, scorer.frames)
        provenance["kfs_labels"] = {
            "root": str(labels.root),
            "written": len(labels.written),
            "unlabelled": labels.unlabelled,
        }
    run = KeyframeRun(records, ranking, report, out / SCORE_FILE, out / DETAILS_FILE, labels)
    write_keyframe_files(records, ranking, run.score_path, run.details_path, provenance)
    return run


def has_confidence(folder: Path) -> bool:
    """`glus keyframes`' resume rule: an expression folder is done when its masks are complete and its
    confidence was written."""
    return is_complete(folder, also=(CONFIDENCE_NAME,))


def _record(folder: Path, video: str, exp: Expression, scorer: GroundTruthScorer | None) -> KeyframeRecord:
    """The key-frame record of one finished expression folder."""
    confidence = FrameConfidence.read(folder / CONFIDENCE_NAME)
    scores = (
        confidence.scores()
        if scorer is None
        else scorer.frame_ious(folder, video, exp.exp_id, confidence.frames)
    )
    return KeyframeRecord(
        video,
        exp.exp_id,
        exp.text,
        confidence.frames,
        scores,
        confidence.predicted_iou,
        confidence.object_score,
    )
