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
  ``inference_iter.py`` does: ``sorted(int(stem) for stem in frames).index(int(value))``.

Ties go to the earliest frame (the official extractor keeps the last file of an unsorted
``os.listdir``, which is arbitrary).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from glus_cli.errors import InputError
from glus_cli.evaluation import Layout, _find_meta, _load_tasks, _read_mask, detect_layout
from glus_cli.metrics import region_similarity
from glus_cli.outputs import write_json_atomic

if TYPE_CHECKING:
    from glus_cli.batch import KeyframeLookup
    from glus_cli.protocol import FrameResult

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
"""Per-frame SAM2 confidence of one expression, written beside its masks by `glus keyframes`."""


@dataclass(frozen=True)
class FrameConfidence:
    """SAM2's view of one expression, frame by frame (None where the LLM gave no ``[SEG]``)."""

    frames: list[str]
    predicted_iou: list[float | None]
    object_score: list[float | None]

    @classmethod
    def from_results(cls, frame_names: Sequence[str], results: Mapping[int, FrameResult]) -> FrameConfidence:
        """From the last `FrameResult` of each frame index."""
        ordered = [results.get(index) for index in range(len(frame_names))]
        return cls(
            list(frame_names),
            [None if r is None or r.iou is None else float(r.iou) for r in ordered],
            [None if r is None or r.object_score is None else float(r.object_score) for r in ordered],
        )

    @classmethod
    def read(cls, path: Path) -> FrameConfidence:
        """Read a `CONFIDENCE_NAME` file."""
        with path.open(encoding="utf-8") as handle:
            return cls(**json.load(handle))

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
    chosen = detect_layout(gt_root) if layout is None else Layout(layout)
    meta = _find_meta(gt_root, meta_path, required=chosen != Layout.MASKS)
    tasks = {(task.video, task.exp_id): task for task in _load_tasks(chosen, gt_root, meta)}
    return GroundTruthScorer(tasks)


class GroundTruthScorer:
    """Per-frame IoU of written prediction PNGs with the ground truth of their expression."""

    def __init__(self, tasks: Mapping[tuple[str, str], Any]) -> None:
        self._tasks = tasks

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._tasks

    def frame_ious(self, folder: Path, video: str, exp_id: str, frames: Sequence[str]) -> list[float]:
        """IoU of ``folder/<frame>.png`` with the ground truth, for each of `frames` (empty vs empty: 1).

        Raises:
            InputError: the expression or one of its frames has no ground truth.
        """
        task = self._tasks.get((video, exp_id))
        if task is None:
            raise InputError(f"the ground truth has no expression {exp_id} of video {video}")
        positions = {name: index for index, name in enumerate(task.frames)}
        ious = []
        for frame in frames:
            if frame not in positions:
                raise InputError(f"the ground truth of {video}/{exp_id} has no frame {frame}")
            pred = _read_mask(folder / f"{frame}.png")
            gt = task.truth.mask(positions[frame], frame)
            ious.append(region_similarity(pred, np.zeros_like(pred) if gt is None else gt))
        return ious


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
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"key-frame file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"key-frame file {path} is not readable JSON ({exc})") from exc
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


def keyframe_lookup(path: Path | None) -> KeyframeLookup | None:
    """Key-frame indices from a score file, as `run_batch` asks for them (None: no key frames)."""
    if path is None:
        return None
    scores = read_scores(path)
    return lambda video, exp_id, frames: keyframe_for(scores, video, exp_id, frames)
