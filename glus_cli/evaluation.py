"""Score predicted masks against referring-video ground truth: J, F and J&F per expression and overall.

Predictions use the submission layout ``PRED/<video>/<exp_id>/<frame>.png`` (read as grayscale, any
nonzero value is foreground). Ground truth comes in one of three layouts (:class:`Layout`), detected
from the dataset folder unless given.

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
- The frame size is the ground truth's. MeViS takes it from the prediction's ``00000.png`` and a
  prediction of another size crashes its worker; here it is an ``InputError`` naming the file. No
  prediction is ever resized.
"""

from __future__ import annotations

import csv
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TextIO

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask
from rich.table import Table
from rich.text import Text

from glus_cli.errors import InputError, OutputError
from glus_cli.metrics import DEFAULT_BOUND_TH, boundary_f_measure, region_similarity

logger = logging.getLogger(__name__)

META_FILE = "meta_expressions.json"
MASK_DICT_FILE = "mask_dict.json"
ANNOTATIONS_DIR = "Annotations"
COLUMNS = ("video", "exp_id", "expression", "J", "F", "J&F", "n_frames")
"""Column names of the CSV rows and of the per-expression JSON rows."""


class Layout(str, Enum):
    """How a ground-truth folder stores its masks."""

    MEVIS = "mevis"
    """MeViS: ``meta_expressions.json`` plus ``mask_dict.json`` (COCO RLE per ``anno_id`` per frame)."""
    PALETTE = "palette"
    """Ref-YouTube-VOS, Ref-DAVIS17: ``meta_expressions.json`` plus ``Annotations/<video>/<frame>.png``
    palette PNGs whose pixel value is the object id."""
    MASKS = "masks"
    """A mask tree ``<video>/<exp_id>/<frame>.png`` like the predictions (nonzero = foreground)."""


@dataclass(frozen=True)
class ExpressionScore:
    """Scores of one expression: J and F averaged over its ``n_frames`` ground-truth frames."""

    video: str
    exp_id: str
    expression: str
    j: float
    f: float
    n_frames: int

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

        Raises:
            OutputError: The file cannot be written.
        """

        def write(handle: TextIO) -> None:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(score.as_row() for score in self.per_expression)

        _write_atomically(Path(path), write)

    def write_json(self, path: str | Path) -> None:
        """Write the layout, overall scores, per-expression rows and warnings to ``path``, atomically.

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

        def write(handle: TextIO) -> None:
            json.dump(document, handle, ensure_ascii=False, indent=2)
            handle.write("\n")

        _write_atomically(Path(path), write)

    def render_table(self, *, per_expression: bool = True) -> Table:
        """A Rich table of the scores in percent: one row per expression (unless turned off), then overall."""
        table = Table(title=f"J&F ({self.layout.value} layout)", caption="scores in %")
        for name in ("Video", "Exp", "Expression", "Frames"):
            table.add_column(name)
        for name in ("J", "F", "J&F"):
            table.add_column(name, justify="right")
        if per_expression:
            for index, score in enumerate(self.per_expression):
                table.add_row(
                    Text(score.video),  # Text: names and sentences are shown as they are, never as markup
                    Text(score.exp_id),
                    Text(score.expression),
                    str(score.n_frames),
                    *_percent(score.j, score.f, score.jf),
                    end_section=index == len(self.per_expression) - 1,
                )
        overall = self.overall
        table.add_row(
            "overall",
            "",
            f"{overall.n_expressions} expressions",
            "",
            *_percent(overall.j, overall.f, overall.jf),
            style="bold",
        )
        return table


def detect_layout(gt_root: str | Path) -> Layout:
    """Tell a ground-truth folder's :class:`Layout` from the files it holds.

    ``mask_dict.json`` means MeViS, an ``Annotations/`` folder means palette annotations, and
    ``<video>/<exp_id>/*.png`` means a mask tree.

    Raises:
        InputError: The folder is missing or matches none of the layouts.
    """
    root = Path(gt_root)
    if not root.is_dir():
        raise InputError(f"ground-truth folder {root} does not exist")
    if (root / MASK_DICT_FILE).is_file():
        return Layout.MEVIS
    if (root / ANNOTATIONS_DIR).is_dir():
        return Layout.PALETTE
    if next(iter(root.glob("*/*/*.png")), None) is not None:
        return Layout.MASKS
    raise InputError(
        f"cannot tell the layout of {root}: expected {MASK_DICT_FILE} (MeViS), {ANNOTATIONS_DIR}/ "
        "(Ref-YouTube-VOS, Ref-DAVIS) or <video>/<exp_id>/<frame>.png masks; name the layout explicitly"
    )


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
        layout: Ground-truth layout; detected with :func:`detect_layout` when ``None``.
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
    chosen = detect_layout(gt_dir) if layout is None else _parse_layout(layout)
    meta = _find_meta(gt_dir, None if meta_path is None else Path(meta_path), required=chosen != Layout.MASKS)
    tasks = _load_tasks(chosen, gt_dir, meta)
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


# --------------------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------------------


class _GroundTruth(Protocol):
    """Per-frame ground truth of one expression."""

    def mask(self, index: int, frame: str) -> np.ndarray | None:
        """Mask of ``frame``, ``index`` in the frame list; ``None`` when empty and of unknown size."""
        ...


@dataclass(frozen=True)
class _RleTruth:
    """MeViS: per frame, the ``(anno_id, COCO RLE)`` pairs of the expression's objects present there."""

    source: Path
    frames: tuple[tuple[tuple[str, dict[str, Any]], ...], ...]

    def mask(self, index: int, frame: str) -> np.ndarray | None:
        union: np.ndarray | None = None
        for anno_id, rle in self.frames[index]:
            try:
                decoded = coco_mask.decode(_compressed_rle(rle)).astype(bool)
            except (AttributeError, TypeError, ValueError, KeyError) as exc:
                raise InputError(
                    f"{self.source}: the mask of anno_id {anno_id} at frame {frame} is not a COCO RLE ({exc})"
                ) from exc
            if union is not None and union.shape != decoded.shape:
                raise InputError(f"{self.source}: the masks at frame {frame} differ in size between anno_ids")
            union = decoded if union is None else union | decoded
        return union


@dataclass(frozen=True)
class _PaletteTruth:
    """Ref-YouTube-VOS / Ref-DAVIS: ``<annotations>/<frame>.png`` pixels equal to one of ``obj_ids``."""

    annotations: Path
    obj_ids: tuple[int, ...]

    def mask(self, index: int, frame: str) -> np.ndarray | None:
        path = self.annotations / f"{frame}.png"
        if not path.is_file():
            raise InputError(f"ground-truth annotation {path} is missing")
        try:
            with Image.open(path) as image:
                if image.mode not in ("P", "L", "I", "I;16"):
                    raise InputError(
                        f"{path} is a {image.mode} image, not a palette or grayscale PNG of object ids"
                    )
                ids = np.asarray(image)
        except OSError as exc:
            raise InputError(f"{path} is not a readable image") from exc
        return np.isin(ids, self.obj_ids)


@dataclass(frozen=True)
class _MaskTreeTruth:
    """A mask tree: ``<folder>/<frame>.png``, nonzero = foreground."""

    folder: Path

    def mask(self, index: int, frame: str) -> np.ndarray | None:
        return _read_mask(self.folder / f"{frame}.png")


@dataclass(frozen=True)
class _ExpressionTask:
    """One expression to score: its frames in order and where their ground truth comes from."""

    video: str
    exp_id: str
    text: str
    frames: tuple[str, ...]
    truth: _GroundTruth


@dataclass(frozen=True)
class _MetaExpression:
    """One expression entry of ``meta_expressions.json``."""

    video: str
    exp_id: str
    frames: tuple[str, ...]
    entry: dict[str, Any]

    @property
    def text(self) -> str:
        return str(self.entry.get("exp", ""))


def _parse_layout(layout: Layout | str) -> Layout:
    try:
        return Layout(layout)
    except ValueError:
        names = ", ".join(member.value for member in Layout)
        raise InputError(f"unknown ground-truth layout {layout!r}; expected one of {names}") from None


def _find_meta(gt_root: Path, meta_path: Path | None, *, required: bool) -> Path | None:
    """The ``meta_expressions.json`` to read: the given one, or the first of the usual places."""
    if meta_path is not None:
        if not meta_path.is_file():
            raise InputError(f"meta file {meta_path} does not exist")
        return meta_path
    candidates = (gt_root / META_FILE, gt_root.parent / "meta_expressions" / gt_root.name / META_FILE)
    found = next((path for path in candidates if path.is_file()), None)
    if found is None and required:
        raise InputError(f"no {META_FILE} at {candidates[0]} or {candidates[1]}; give its path explicitly")
    return found


def _load_tasks(layout: Layout, gt_root: Path, meta: Path | None) -> list[_ExpressionTask]:
    expressions = [] if meta is None else _read_meta(meta)
    if layout == Layout.MASKS:
        texts = {(e.video, e.exp_id): e.text for e in expressions}
        return _mask_tree_tasks(gt_root, texts)
    if layout == Layout.MEVIS:
        return _mevis_tasks(expressions, gt_root / MASK_DICT_FILE, meta)
    return _palette_tasks(expressions, gt_root / ANNOTATIONS_DIR, meta)


def _mevis_tasks(
    expressions: Iterable[_MetaExpression], mask_dict_path: Path, meta: Path | None
) -> list[_ExpressionTask]:
    mask_dict = _read_json(mask_dict_path)
    if not isinstance(mask_dict, dict):
        raise InputError(f"{mask_dict_path} is not a mask dictionary ({{anno_id: [RLE or null per frame]}})")
    tasks = []
    for expression in expressions:
        per_frame: list[list[tuple[str, dict[str, Any]]]] = [[] for _ in expression.frames]
        for anno_id in _ids(expression, "anno_id", meta):
            masks = mask_dict.get(str(anno_id))
            if not isinstance(masks, list) or len(masks) < len(expression.frames):
                raise InputError(
                    f"{mask_dict_path} has no mask list for anno_id {anno_id} covering the "
                    f"{len(expression.frames)} frames of video {expression.video}"
                )
            for frame_masks, rle in zip(per_frame, masks, strict=False):
                if rle:
                    frame_masks.append((str(anno_id), rle))
        truth = _RleTruth(mask_dict_path, tuple(tuple(frame_masks) for frame_masks in per_frame))
        tasks.append(_task(expression, truth))
    return tasks


def _palette_tasks(
    expressions: Iterable[_MetaExpression], annotations: Path, meta: Path | None
) -> list[_ExpressionTask]:
    if not annotations.is_dir():
        raise InputError(f"ground-truth folder {annotations} does not exist")
    tasks = []
    for expression in expressions:
        obj_ids = _ids(expression, "obj_id", meta)
        tasks.append(_task(expression, _PaletteTruth(annotations / expression.video, obj_ids)))
    return tasks


def _mask_tree_tasks(gt_root: Path, texts: dict[tuple[str, str], str]) -> list[_ExpressionTask]:
    tasks = []
    for video_dir in sorted((p for p in gt_root.iterdir() if p.is_dir()), key=_natural_key):
        for exp_dir in sorted((p for p in video_dir.iterdir() if p.is_dir()), key=_natural_key):
            frames = tuple(sorted(path.stem for path in exp_dir.glob("*.png")))
            if frames:
                text = texts.get((video_dir.name, exp_dir.name), "")
                tasks.append(
                    _ExpressionTask(video_dir.name, exp_dir.name, text, frames, _MaskTreeTruth(exp_dir))
                )
    return tasks


def _task(expression: _MetaExpression, truth: _GroundTruth) -> _ExpressionTask:
    return _ExpressionTask(expression.video, expression.exp_id, expression.text, expression.frames, truth)


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc})") from exc
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _read_meta(path: Path) -> list[_MetaExpression]:
    """All expressions of a ``meta_expressions.json``, in file order, checked for the keys we use."""
    meta = _read_json(path)
    videos = meta.get("videos") if isinstance(meta, dict) else None
    if not isinstance(videos, dict):
        raise InputError(f'{path} has no "videos" object; is it a meta_expressions.json?')
    expressions = []
    for video, entry in videos.items():
        frames = entry.get("frames") if isinstance(entry, dict) else None
        exps = entry.get("expressions") if isinstance(entry, dict) else None
        if not isinstance(frames, list) or not frames or not all(isinstance(name, str) for name in frames):
            raise InputError(f'{path}: video {video} has no "frames" list of frame names')
        if not isinstance(exps, dict) or not all(isinstance(exp, dict) for exp in exps.values()):
            raise InputError(f'{path}: video {video} has no "expressions" object')
        expressions.extend(_MetaExpression(video, exp_id, tuple(frames), exp) for exp_id, exp in exps.items())
    return expressions


def _ids(expression: _MetaExpression, key: str, source: Path | None) -> tuple[int, ...]:
    """The integer ids under ``key`` (one id, or a list of ids, as numbers or digit strings)."""
    value = expression.entry.get(key)
    items = value if isinstance(value, list) else [value]
    try:
        return tuple(int(item) for item in items)
    except (TypeError, ValueError):
        raise InputError(
            f'{source}: expression {expression.exp_id} of video {expression.video} has no valid "{key}"'
        ) from None


def _compressed_rle(rle: dict[str, Any]) -> dict[str, Any]:
    """A COCO RLE in the compressed form ``pycocotools.mask.decode`` takes (uncompressed counts are lists)."""
    if isinstance(rle.get("counts"), list):
        height, width = rle["size"]
        return coco_mask.frPyObjects(rle, height, width)
    return rle


# --------------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------------


def _score_all(
    tasks: list[_ExpressionTask], pred_root: Path, bound_th: float, workers: int
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


def _score_expression(
    task: _ExpressionTask, *, pred_root: Path, bound_th: float
) -> tuple[ExpressionScore, str | None]:
    """Mean J and F of one expression over its frames, and a warning if prediction PNGs are missing."""
    folder = pred_root / task.video / task.exp_id
    j_values = []
    f_values = []
    missing = []
    for index, frame in enumerate(task.frames):
        pred_path = folder / f"{frame}.png"
        pred = _read_mask(pred_path) if pred_path.is_file() else None
        if pred is None:
            missing.append(pred_path.name)
        gt = task.truth.mask(index, frame)
        j, f = _frame_scores(pred, gt, pred_path, bound_th)
        j_values.append(j)
        f_values.append(f)

    score = ExpressionScore(
        task.video,
        task.exp_id,
        task.text,
        float(np.mean(j_values)),
        float(np.mean(f_values)),
        len(task.frames),
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


def _frame_scores(
    pred: np.ndarray | None, gt: np.ndarray | None, pred_path: Path, bound_th: float
) -> tuple[float, float]:
    """J and F of one frame; ``None`` masks are empty and take the other mask's size."""
    if pred is None and gt is None:
        return 1.0, 1.0  # empty against empty: J and F are 1 whatever the size
    if pred is None:
        pred = np.zeros_like(gt)
    elif gt is None:
        gt = np.zeros_like(pred)
    elif pred.shape != gt.shape:
        (height, width), (gt_height, gt_width) = pred.shape, gt.shape
        raise InputError(f"{pred_path} is {width}x{height} but its ground truth is {gt_width}x{gt_height}")
    return region_similarity(pred, gt), boundary_f_measure(pred, gt, bound_th)


def _read_mask(path: Path) -> np.ndarray:
    """A PNG mask read as MeViS reads predictions (OpenCV, grayscale); nonzero = foreground."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise InputError(f"{path} is missing or not a readable image")
    return image


def _match_prediction_videos(
    pred_dir: Path, videos: list[str], tasks: list[_ExpressionTask]
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
    extra = sorted(path.name for path in pred_dir.iterdir() if path.is_dir() and path.name not in known)
    if extra:
        listed = ", ".join(extra[:3]) + (", …" if len(extra) > 3 else "")
        warnings.append(f"{len(extra)} prediction folders have no ground truth and were ignored: {listed}")
    return present, warnings


# --------------------------------------------------------------------------------------------------
# Output helpers
# --------------------------------------------------------------------------------------------------


def _percent(*values: float) -> list[str]:
    return [f"{100 * value:.1f}" for value in values]


def _natural_key(path: Path) -> tuple[int, int, str]:
    """Sort ``2`` before ``10`` among numeric names, numeric names before others."""
    name = path.name
    return (0, int(name), name) if name.isdigit() else (1, 0, name)


def _write_atomically(path: Path, write: Callable[[TextIO], None]) -> None:
    """Write ``path`` through a temporary file in the same folder, then rename it into place."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with temporary.open("w", encoding="utf-8", newline="") as handle:
            write(handle)
        temporary.replace(path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
