"""Score predicted masks against referring-video ground truth: J, F and J&F per expression and overall.

Predictions use the submission layout ``PRED/<video>/<exp_id>/<frame>.png`` (read as grayscale, any
nonzero value is foreground). Ground truth comes in one of three layouts
(:class:`~glus_cli.ground_truth.Layout`), detected from the dataset folder unless given; reading it is
`glus_cli.ground_truth`'s job, this module only scores and writes the score files.

The scoring follows the MeViS evaluation script (henghuiding/MeViS ``tools/eval_mevis.py`` at 7c0620b,
``eval_queue`` lines 20-53 and the averages at 89-94; GLUS copies it as ``utils/eval_mevis.py``):

- the frames scored are the ones the meta file lists for the video;
- the ground truth of an expression is the union of the masks of its objects;
- an expression's J and F are the means of the per-frame :func:`~glus_cli.metrics.region_similarity`
  and :func:`~glus_cli.metrics.boundary_f_measure` over its frames;
- overall J and F are the means over expressions, and J&F = (J + F) / 2;
- a video with no prediction folder scores J = F = 0 for each of its expressions.

Deviations, all reported in :attr:`EvaluationResult.warnings` or as :class:`~glus_cli.errors.InputError`:

- A missing frame PNG is scored as an empty prediction and warned about. The MeViS script raises inside
  its worker there, so the expression silently vanishes from the averages (which inflates the score when
  the model failed on hard expressions) and the worker stops scoring altogether; a missing expression
  folder is treated the same way, as all frames missing.
- The frame size is the ground truth's, at every frame, whether the object is there or not (MeViS
  stores no size for a frame without the object; the size of the video's other RLEs is used). MeViS
  takes it from the prediction's ``00000.png`` and a prediction of another size crashes its worker;
  here it is an ``InputError`` naming the file. Only where the ground truth gives no size at all (no
  object of the video appears in any frame) is it the expression's first prediction's, as in MeViS.
  No prediction is ever resized.
- Predictions are read by :func:`~glus_cli.ground_truth.read_mask`: any nonzero pixel is the object,
  also in 16-bit and palette PNGs, which MeViS's 8-bit grayscale read gets wrong.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from glus_cli.errors import InputError, OutputError
from glus_cli.files import atomic_write_bytes
from glus_cli.ground_truth import ANNOTATIONS_DIR, ExpressionTask, Layout, load_ground_truth, read_mask
from glus_cli.metrics import DEFAULT_BOUND_TH, boundary_f_measure, region_similarity
from glus_cli.safe_names import child_path
from glus_cli.video import natural_key

logger = logging.getLogger(__name__)

COLUMNS = ("video", "exp_id", "expression", "J", "F", "J&F", "n_frames")
"""Column names of the CSV rows and of the per-expression JSON rows."""
REPORT_FILES_DIR = "report_files"
"""The folder of `report.html`'s own files (`glus_cli.report`) in a run folder: never a video."""


@dataclass(frozen=True)
class ExpressionScore:
    """Scores of one expression: J and F averaged over its ``n_frames`` ground-truth frames."""

    video: str
    exp_id: str
    expression: str
    j: float
    f: float
    n_frames: int
    frame_j: tuple[float, ...] = field(default=(), compare=False, repr=False)
    """J of each ground-truth frame, in order (empty for a video without predictions); not in the files."""

    @property
    def jf(self) -> float:
        """J&F = (J + F) / 2."""
        return (self.j + self.f) / 2

    def as_row(self) -> dict[str, str | float | int]:
        """The score as a mapping keyed by :data:`COLUMNS`."""
        values = (self.video, self.exp_id, self.expression, self.j, self.f, self.jf, self.n_frames)
        return dict(zip(COLUMNS, values, strict=True))


@dataclass(frozen=True)
class OverallScore:
    """Dataset scores: J and F averaged over ``n_expressions`` expressions."""

    j: float
    f: float
    n_expressions: int

    @property
    def jf(self) -> float:
        """J&F = (J + F) / 2."""
        return (self.j + self.f) / 2


@dataclass
class EvaluationResult:
    """Everything :func:`evaluate` measured, in the ground truth's expression order."""

    layout: Layout
    per_expression: list[ExpressionScore]
    overall: OverallScore
    warnings: list[str] = field(default_factory=list)

    def write_csv(self, path: str | Path) -> None:
        """Write one row per expression (columns :data:`COLUMNS`) to ``path``, atomically.

        Its folder is created.

        Raises:
            OutputError: The file cannot be written.
        """
        buffer = io.StringIO(newline="")  # keep csv's \r\n line ends, as a file opened with newline=""
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(score.as_row() for score in self.per_expression)
        _write_text(Path(path), buffer.getvalue())

    def write_json(self, path: str | Path) -> None:
        """Write the layout, overall scores, per-expression rows and warnings to ``path``, atomically.

        Its folder is created.

        Raises:
            OutputError: The file cannot be written.
        """
        overall = self.overall
        document = {
            "layout": self.layout.value,
            "overall": {
                "J": overall.j,
                "F": overall.f,
                "J&F": overall.jf,
                "n_expressions": overall.n_expressions,
            },
            "per_expression": [score.as_row() for score in self.per_expression],
            "warnings": self.warnings,
        }
        _write_text(Path(path), json.dumps(document, ensure_ascii=False, indent=2) + "\n")


def evaluate(
    pred_root: str | Path,
    gt_root: str | Path,
    *,
    layout: Layout | str | None = None,
    meta_path: str | Path | None = None,
    bound_th: float = DEFAULT_BOUND_TH,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> EvaluationResult:
    """Score the predictions under ``pred_root`` against the ground truth under ``gt_root``.

    Args:
        pred_root: Folder holding ``<video>/<exp_id>/<frame>.png`` predicted masks.
        gt_root: Dataset split folder (for example ``mevis/valid_u`` or ``Refer-YouTube-VOS/train``) or
            a mask tree.
        layout: Ground-truth layout; detected with :func:`~glus_cli.ground_truth.detect_layout` when ``None``.
        meta_path: The ``meta_expressions.json`` to use. By default ``gt_root/meta_expressions.json``,
            else ``gt_root/../meta_expressions/<split>/meta_expressions.json`` (the Ref-YouTube-VOS
            layout). Required by the MeViS and palette layouts; in a mask tree it only supplies the
            expression texts.
        bound_th: Boundary tolerance of F, see :func:`~glus_cli.metrics.boundary_f_measure`.
        workers: Processes scoring expressions in parallel; 1 scores in this process.
        progress: Called as ``progress(done, total)`` after each expression that has predictions.

    Returns:
        Per-expression and overall scores, with the warnings described in the module docstring.

    Raises:
        InputError: A folder or file is missing or malformed, a prediction's size differs from its
            ground truth, or ``pred_root`` holds none of the ground-truth videos.
    """
    pred_dir = Path(pred_root)
    gt_dir = Path(gt_root)
    if workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    if not pred_dir.is_dir():
        raise InputError(f"prediction folder {pred_dir} does not exist")
    chosen, tasks = load_ground_truth(
        gt_dir, layout=layout, meta_path=None if meta_path is None else Path(meta_path)
    )
    if not tasks:
        raise InputError(f"the ground truth in {gt_dir} lists no expressions")

    videos = list(dict.fromkeys(task.video for task in tasks))
    present, warnings = _match_prediction_videos(pred_dir, videos, tasks)

    to_score = [task for task in tasks if task.video in present]
    logger.info("scoring %d expressions of %d videos (%s layout)", len(to_score), len(present), chosen.value)
    scored: dict[tuple[str, str], ExpressionScore] = {}
    for done, (score, warning) in enumerate(_score_all(to_score, pred_dir, bound_th, workers), start=1):
        scored[score.video, score.exp_id] = score
        if warning is not None:
            warnings.append(warning)
        if progress is not None:
            progress(done, len(to_score))

    rows = [
        scored[task.video, task.exp_id]
        if task.video in present
        else ExpressionScore(task.video, task.exp_id, task.text, 0.0, 0.0, len(task.frames))
        for task in tasks
    ]
    overall = OverallScore(
        j=float(np.mean([row.j for row in rows])),
        f=float(np.mean([row.f for row in rows])),
        n_expressions=len(rows),
    )
    logger.info("J %.4f, F %.4f, J&F %.4f over %d expressions", overall.j, overall.f, overall.jf, len(rows))
    return EvaluationResult(layout=chosen, per_expression=rows, overall=overall, warnings=warnings)


def _score_all(
    tasks: list[ExpressionTask], pred_root: Path, bound_th: float, workers: int
) -> Iterator[tuple[ExpressionScore, str | None]]:
    """Score ``tasks`` in order, in this process or in a pool of ``workers`` processes."""
    score = partial(_score_expression, pred_root=pred_root, bound_th=bound_th)
    if workers == 1:
        yield from map(score, tasks)
        return
    pool = ProcessPoolExecutor(max_workers=workers)
    try:
        yield from pool.map(score, tasks)
    finally:
        pool.shutdown(cancel_futures=True)


@dataclass(frozen=True)
class FrameMasks:
    """The prediction and the ground truth of one frame, of the same size wherever both are known.

    Attributes:
        frame: the frame name.
        path: the prediction PNG ``<folder>/<frame>.png``.
        prediction: the predicted mask, ``(H, W)`` bool; None when `path` does not exist.
        truth: the ground-truth mask, ``(H, W)``; None when it is empty and of unknown size.
    """

    frame: str
    path: Path
    prediction: np.ndarray | None
    truth: np.ndarray | None

    def region_similarity(self) -> float:
        """J of the frame (an absent prediction is an empty mask)."""
        pair = self._pair()
        return 1.0 if pair is None else region_similarity(*pair)

    def boundary_f_measure(self, bound_th: float = DEFAULT_BOUND_TH) -> float:
        """F of the frame (an absent prediction is an empty mask)."""
        pair = self._pair()
        return 1.0 if pair is None else boundary_f_measure(*pair, bound_th)

    def _pair(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(prediction, truth)``, an absent side as an empty mask of the other's size; None when both
        are empty and of unknown size: empty against empty, J and F are 1 whatever the size."""
        if self.prediction is None and self.truth is None:
            return None
        if self.prediction is None:
            return np.zeros_like(self.truth, dtype=bool), self.truth
        if self.truth is None:
            return self.prediction, np.zeros_like(self.prediction)
        return self.prediction, self.truth


def paired_masks(
    task: ExpressionTask, folder: Path, frames: Sequence[str] | None = None
) -> Iterator[FrameMasks]:
    """Each frame's prediction ``folder/<frame>.png`` beside its ground truth, with every size checked.

    A prediction must have its ground truth's size at every frame, including those where the object is
    absent; where the ground truth has no size at all, the size of the expression's first prediction.

    Args:
        task: the expression's ground truth.
        folder: its prediction folder.
        frames: the frames to pair, in this order (default: all the ground truth's frames).

    Raises:
        InputError: a frame has no ground truth, a prediction is unreadable or of the wrong size.
    """
    positions = {name: index for index, name in enumerate(task.frames)}
    reference: tuple[Path, tuple[int, ...]] | None = None  # the first prediction and its shape
    for frame in task.frames if frames is None else frames:
        if frame not in positions:
            raise InputError(f"the ground truth of {task.video}/{task.exp_id} has no frame {frame}")
        path = folder / f"{frame}.png"
        prediction = read_mask(path) if path.is_file() else None
        truth = task.truth.mask(positions[frame], frame)
        if prediction is not None:
            if truth is not None:
                _check_size(path, prediction.shape, "its ground truth", truth.shape)
            elif reference is not None:
                _check_size(path, prediction.shape, str(reference[0]), reference[1])
            reference = reference or (path, prediction.shape)
        yield FrameMasks(frame, path, prediction, truth)


def _check_size(path: Path, shape: tuple[int, ...], what: str, expected: tuple[int, ...]) -> None:
    """Raise an InputError naming `path` when its `shape` ``(H, W)`` is not `expected`, that of `what`."""
    if shape != expected:
        (height, width), (expected_height, expected_width) = shape, expected
        raise InputError(f"{path} is {width}x{height} but {what} is {expected_width}x{expected_height}")


def _score_expression(
    task: ExpressionTask, *, pred_root: Path, bound_th: float
) -> tuple[ExpressionScore, str | None]:
    """Mean J and F of one expression over its frames, and a warning if prediction PNGs are missing."""
    folder = child_path(pred_root, task.video, task.exp_id, source="the ground truth", entry="expression")
    j_values = []
    f_values = []
    missing = []
    for masks in paired_masks(task, folder):
        if masks.prediction is None:
            missing.append(masks.path.name)
        j_values.append(masks.region_similarity())
        f_values.append(masks.boundary_f_measure(bound_th))

    score = ExpressionScore(
        task.video,
        task.exp_id,
        task.text,
        float(np.mean(j_values)),
        float(np.mean(f_values)),
        len(task.frames),
        tuple(float(value) for value in j_values),
    )
    where = f"{task.video}/{task.exp_id}"
    if not folder.is_dir():
        return (
            score,
            f"{where}: no prediction folder, its {len(task.frames)} frames were scored as empty masks",
        )
    if missing:
        return score, (
            f"{where}: {len(missing)} of {len(task.frames)} frame PNGs missing, scored as empty masks "
            f"(first: {missing[0]})"
        )
    return score, None


def _match_prediction_videos(
    pred_dir: Path, videos: list[str], tasks: list[ExpressionTask]
) -> tuple[set[str], list[str]]:
    """The ground-truth videos that have a prediction folder, and warnings about the others."""
    present = {video for video in videos if (pred_dir / video).is_dir()}
    if not present:
        annotations = pred_dir / ANNOTATIONS_DIR
        hint = f"; did you mean {annotations}?" if annotations.is_dir() else ""
        raise InputError(
            f"{pred_dir} holds none of the {len(videos)} ground-truth videos "
            f"(expected <video>/<exp_id>/<frame>.png){hint}"
        )
    warnings = []
    for video in videos:
        if video not in present:
            count = sum(task.video == video for task in tasks)
            warnings.append(f"{video}: no prediction folder, its {count} expressions score J = F = 0")
    known = set(videos)
    extra = sorted(
        (
            path.name
            for path in pred_dir.iterdir()
            if path.is_dir() and path.name not in known and path.name != REPORT_FILES_DIR
        ),
        key=natural_key,
    )
    if extra:
        listed = ", ".join(extra[:3]) + (", …" if len(extra) > 3 else "")
        warnings.append(f"{len(extra)} prediction folders have no ground truth and were ignored: {listed}")
    return present, warnings


def _write_text(path: Path, text: str) -> None:
    """Write a score file with the package's atomic writer, creating its folder first.

    Raises:
        OutputError: the folder cannot be created or the file written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    atomic_write_bytes(path, text.encode("utf-8"))
