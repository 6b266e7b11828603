"""Key-frame score files: the official ``{"<video>_<exp_id>": "<frame name>"}`` file and its details.

GLUS-S runs a forward pass from a key frame and a backward pass to frame 0. This module holds the files
that carry key frames between commands:

- `write_keyframe_files` writes, from one `KeyframeRecord` per (video, expression) (every frame's score),
  the official score file (`SCORE_FILE`) and a richer JSON with every per-frame score (`DETAILS_FILE`);
- `read_scores` reads a score file back, and `keyframe_for` turns a value into a key-frame index as the
  official ``inference_iter.py`` does: ``sorted(int(stem) for stem in frames).index(int(value))``;
  `keyframe_lookup` is that lookup as `glus batch` and `glus segment --keyframes` ask for it.

`glus_cli.keyframes` produces the records (`glus keyframes`). Ties go to the earliest frame (the official
extractor keeps the last file of an unsorted ``os.listdir``, which is arbitrary).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from glus_cli.errors import InputError
from glus_cli.files import write_json_atomic
from glus_cli.json_files import read_json
from glus_cli.safe_names import checked_name

if TYPE_CHECKING:
    from glus_cli.batch import KeyframeLookup

Ranking = Literal["ground_truth_iou", "model_confidence"]
"""What a key-frame score measures."""

RANKING_DESCRIPTIONS: dict[Ranking, str] = {
    "ground_truth_iou": "IoU of GLUS's predicted mask with the ground truth (the paper's KFS pseudo-label)",
    "model_confidence": (
        "no ground truth: the model's own confidence, SAM2's predicted IoU x sigmoid(object score), "
        "0 where the LLM gave no [SEG]; NOT the paper's pseudo-label"
    ),
}

SCORE_FILE = "keyframes.json"
"""The official score file ``{"<video>_<exp_id>": "<frame name>"}`` under ``OUT``."""
DETAILS_FILE = "keyframe_scores.json"
"""Every frame's score, SAM2's predicted IoU and object score, under ``OUT``."""


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

    Each key joins a video name and an exp_id, so it must be one plain name as they are
    (`glus_cli.safe_names`); a key that is not can match no expression and marks a broken or hostile file.

    Raises:
        InputError: missing, not JSON, not such a mapping, or a key or frame name that is not a plain name.
    """
    data = read_json(path, what="key-frame file ")
    if not isinstance(data, dict) or not all(
        isinstance(value, (str, int)) and not isinstance(value, bool) for value in data.values()
    ):
        raise InputError(f'key-frame file {path} must map "<video>_<exp_id>" to a frame name or number')
    for key, value in data.items():
        checked_name(key, source=path, entry="key")
        checked_name(value, source=path, entry=f"key {key!r}: frame")
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
