"""Key frames: GLUS's key-frame pseudo-labels (paper §3.4, official `kfs/`) and the score files that use them.

GLUS-S runs a forward pass from a key frame and a backward pass to frame 0. Its key-frame selector is
trained on pseudo-labels that GLUS itself produces: for each (video, expression), the frame whose
predicted mask has the highest IoU with the ground truth. This module

- scores every frame of a (video, expression) by that IoU (`ground_truth_scores`), or, without ground
  truth, by the model's own confidence (`confidence`: SAM2's predicted IoU times the sigmoid of its
  object score; 0 where the LLM gave no ``[SEG]``);
- writes the official score file ``{"<video>_<exp_id>": "<frame name>"}`` and a richer JSON with every
  per-frame score (`write_keyframe_files`);
- reads a score file back into key-frame indices (`keyframe_for`), as the official
  ``inference_iter.py`` does: ``sorted(int(stem) for stem in frames).index(int(value))``;
- runs the whole procedure over a dataset (`run_keyframes`, behind `glus keyframes`): GLUS on every
  pending (video, expression) with SAM2's confidence kept beside the masks, then the scores and files,
  and with ground truth the KFS selector's training labels (`glus_cli.kfs_labels`).

Ties go to the earliest frame (the official extractor keeps the last file of an unsorted
``os.listdir``, which is arbitrary).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from glus_cli import __version__
from glus_cli.batch import BatchHooks, BatchReport, VideoTask, run_batch
from glus_cli.errors import InputError
from glus_cli.evaluation import paired_masks
from glus_cli.ground_truth import ExpressionTask, Layout, load_ground_truth
from glus_cli.json_files import read_json, read_json_object
from glus_cli.kfs_labels import LABELS_DIR, LabelReport, write_labels
from glus_cli.outputs import write_json_atomic
from glus_cli.runner import Expression, is_complete

if TYPE_CHECKING:
    from glus_cli.batch import KeyframeLookup
    from glus_cli.model.glus import GlusModel
    from glus_cli.protocol import SegmentationOptions
    from glus_cli.video import VideoSource

Ranking = Literal["ground_truth_iou", "model_confidence"]
"""What a key-frame score measures."""

RANKING_DESCRIPTIONS: dict[Ranking, str] = {
    "ground_truth_iou": "IoU of GLUS's predicted mask with the ground truth (the paper's KFS pseudo-label)",
    "model_confidence": (
        "no ground truth: the model's own confidence, SAM2's predicted IoU x sigmoid(object score), "
        "0 where the LLM gave no [SEG]; NOT the paper's pseudo-label"
    ),
}

CONFIDENCE_NAME = "confidence.json"
"""Per-frame SAM2 confidence of one expression, written beside its masks by `run_keyframes`."""
MASKS_DIR = "masks"
"""Where `run_keyframes` writes the masks: ``OUT/masks/<video>/<exp_id>/<frame>.png``."""
SCORE_FILE = "keyframes.json"
"""The official score file ``{"<video>_<exp_id>": "<frame name>"}`` under ``OUT``."""
DETAILS_FILE = "keyframe_scores.json"
"""Every frame's score, SAM2's predicted IoU and object score, under ``OUT``."""


@dataclass(frozen=True)
class FrameConfidence:
    """SAM2's view of one expression, frame by frame (None where the LLM gave no ``[SEG]``)."""

    frames: list[str]
    predicted_iou: list[float | None]
    object_score: list[float | None]

    @classmethod
    def from_scores(
        cls, frame_names: Sequence[str], scores: Mapping[int, tuple[float | None, float | None]]
    ) -> FrameConfidence:
        """From ``(predicted IoU, object score)`` by frame index (a missing index: no ``[SEG]``)."""
        ordered = [scores.get(index, (None, None)) for index in range(len(frame_names))]
        return cls(
            list(frame_names),
            [None if iou is None else float(iou) for iou, _ in ordered],
            [None if obj is None else float(obj) for _, obj in ordered],
        )

    @classmethod
    def read(cls, path: Path) -> FrameConfidence:
        """Read a `CONFIDENCE_NAME` file."""
        return cls(**read_json_object(path, what="confidence file "))

    def write(self, path: Path) -> None:
        """Write it atomically as `CONFIDENCE_NAME`-style JSON."""
        write_json_atomic(path, asdict(self))

    def scores(self) -> list[float]:
        """`confidence` of every frame."""
        return [confidence(iou, obj) for iou, obj in zip(self.predicted_iou, self.object_score, strict=True)]


@dataclass(frozen=True)
class KeyframeRecord:
    """Every frame's key-frame score for one (video, expression)."""

    video: str
    exp_id: str
    expression: str
    frames: list[str]
    scores: list[float]
    predicted_iou: list[float | None]
    object_score: list[float | None]

    @property
    def key(self) -> str:
        """The score-file key ``<video>_<exp_id>``."""
        return f"{self.video}_{self.exp_id}"

    @property
    def key_frame_index(self) -> int:
        """Index of the best-scoring frame (the earliest on ties)."""
        return int(np.argmax(self.scores))

    @property
    def key_frame(self) -> str:
        """Name of the best-scoring frame."""
        return self.frames[self.key_frame_index]


def confidence(predicted_iou: float | None, object_score: float | None) -> float:
    """Model confidence of one frame: predicted IoU x sigmoid(object-score logit); 0 without ``[SEG]``."""
    if predicted_iou is None or object_score is None:
        return 0.0
    return predicted_iou / (1.0 + math.exp(-object_score))


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
    model: GlusModel,
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
        model: the loaded GLUS model.
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
    report = run_batch(
        model,
        tasks,
        masks,
        ["png"],
        options,
        stride=stride,
        max_frames=max_frames,
        hooks=BatchHooks(_has_confidence, on_video),  # `segment_to_outputs` writes the confidence
    )
    failed = {failure.video for failure in report.failures}
    records = [
        _record(masks / task.name / exp.exp_id, task.name, exp, scorer)
        for task in tasks
        if task.name not in failed
        for exp in task.expressions
    ]
    ranking: Ranking = "model_confidence" if scorer is None else "ground_truth_iou"
    provenance = {
        "glus_cli_version": __version__,
        "model": asdict(model.info),
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


def write_keyframe_files(
    records: Sequence[KeyframeRecord],
    ranking: Ranking,
    score_path: Path,
    details_path: Path,
    provenance: Mapping[str, Any],
) -> None:
    """Write the official score file and the per-frame details JSON, atomically.

    Args:
        records: one per (video, expression).
        ranking: what the scores measure (written into the details, and its description).
        score_path: ``{"<video>_<exp_id>": "<frame name>"}``, read by the official ``--score_json`` and by
            `keyframe_for`.
        details_path: ``{"ranking", "ranking_description", ..., "expressions": {key: {...}}}`` with every
            frame's score, SAM2's predicted IoU and object score, and the key frame.
        provenance: model and option details to store in the details file.
    """
    write_json_atomic(score_path, {record.key: record.key_frame for record in records})
    details = {
        "ranking": ranking,
        "ranking_description": RANKING_DESCRIPTIONS[ranking],
        **provenance,
        "expressions": {
            record.key: {
                **asdict(record),
                "key_frame": record.key_frame,
                "key_frame_index": record.key_frame_index,
            }
            for record in records
        },
    }
    write_json_atomic(details_path, details)


def read_scores(path: Path) -> dict[str, str | int]:
    """A key-frame score file ``{"<video>_<exp_id>": frame name or number}``.

    Raises:
        InputError: missing, not JSON, or not such a mapping.
    """
    data = read_json(path, what="key-frame file ")
    if not isinstance(data, dict) or not all(
        isinstance(value, (str, int)) and not isinstance(value, bool) for value in data.values()
    ):
        raise InputError(f'key-frame file {path} must map "<video>_<exp_id>" to a frame name or number')
    return data


def keyframe_for(
    scores: Mapping[str, str | int], video_name: str, exp_id: str, frame_names: Sequence[str]
) -> int | None:
    """Key-frame index of (video, expression) in `frame_names`, from a score file; None if it has none.

    The value is a frame name (``"00005"``) or number (``5``); numbers are matched by value against
    numeric frame names, as the official ``sorted(int(stem) for stem in frames).index(int(value))``
    does, so ``5`` and ``"5"`` find frame ``00005``.

    Raises:
        InputError: the value names no frame of `frame_names` (with ``--stride``/``--max-frames``, the
            key frame must be one of the frames kept).
    """
    value = scores.get(f"{video_name}_{exp_id}")
    if value is None:
        return None
    if isinstance(value, str) and value in frame_names:
        return list(frame_names).index(value)
    numbers = {int(name): index for index, name in enumerate(frame_names) if name.isdigit()}
    try:
        found = numbers.get(int(value))
    except ValueError:
        found = None
    if found is None:
        raise InputError(f"key frame {value!r} of {video_name}_{exp_id} is not one of the video's frames")
    return found


def _has_confidence(folder: Path) -> bool:
    """An expression folder is done when its masks are complete and its confidence was written."""
    return is_complete(folder) and (folder / CONFIDENCE_NAME).is_file()


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


def keyframe_lookup(path: Path | None) -> KeyframeLookup | None:
    """Key-frame indices from a score file, as `run_batch` asks for them (None: no key frames)."""
    if path is None:
        return None
    scores = read_scores(path)
    return lambda video, exp_id, frames: keyframe_for(scores, video, exp_id, frames)
