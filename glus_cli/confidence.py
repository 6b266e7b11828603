"""SAM2's per-frame confidence of one expression: ``confidence.json`` beside its masks.

Every expression folder gets one (`glus_cli.runner`), written before ``expression.json``; `glus keyframes`
ranks frames by it without ground truth, `glus report` charts it and `glus export` filters on it.
Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from glus_cli.files import write_json_atomic
from glus_cli.json_files import read_json_object

CONFIDENCE_NAME = "confidence.json"
"""Per-frame SAM2 confidence of one expression, written beside its masks."""


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


def confidence(predicted_iou: float | None, object_score: float | None) -> float:
    """Model confidence of one frame: predicted IoU x sigmoid(object-score logit); 0 without ``[SEG]``."""
    if predicted_iou is None or object_score is None:
        return 0.0
    return predicted_iou / (1.0 + math.exp(-object_score))
