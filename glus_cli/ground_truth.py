"""Referring-video ground truth: the dataset layouts, their meta files, and per-frame truth masks.

A ground-truth folder comes in one of three layouts (:class:`Layout`), told apart by `detect_layout`:

- MeViS: ``meta_expressions.json`` plus ``mask_dict.json`` (a COCO RLE per ``anno_id`` per frame);
- Ref-YouTube-VOS / Ref-DAVIS17: ``meta_expressions.json`` plus ``Annotations/<video>/<frame>.png``
  palette PNGs whose pixel value is the object id;
- a mask tree ``<video>/<exp_id>/<frame>.png`` like the predictions (nonzero = foreground).

`load_ground_truth` turns a folder into one :class:`ExpressionTask` per expression: its frames in the
meta file's order and a truth reader (:class:`RleTruth`, :class:`PaletteTruth`, :class:`MaskTreeTruth`)
giving the union mask of its objects at each frame. `glus eval` (`glus_cli.evaluation`) scores
predictions against these; `glus keyframes` (`glus_cli.keyframes`) ranks frames by them.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as coco_mask

from glus_cli.errors import InputError
from glus_cli.json_files import read_json
from glus_cli.safe_names import checked_name, child_path
from glus_cli.video import natural_key

META_FILE = "meta_expressions.json"
MASK_DICT_FILE = "mask_dict.json"
ANNOTATIONS_DIR = "Annotations"


class Layout(str, Enum):
    """How a ground-truth folder stores its masks."""

    MEVIS = "mevis"
    """MeViS: ``meta_expressions.json`` plus ``mask_dict.json`` (COCO RLE per ``anno_id`` per frame)."""
    PALETTE = "palette"
    """Ref-YouTube-VOS, Ref-DAVIS17: ``meta_expressions.json`` plus ``Annotations/<video>/<frame>.png``
    palette PNGs whose pixel value is the object id."""
    MASKS = "masks"
    """A mask tree ``<video>/<exp_id>/<frame>.png`` like the predictions (nonzero = foreground)."""


class TruthReader(Protocol):
    """Per-frame ground truth of one expression."""

    def mask(self, index: int, frame: str) -> np.ndarray | None:
        """Mask of ``frame``, ``index`` in the frame list; ``None`` when empty and of unknown size."""
        ...


@dataclass(frozen=True)
class RleTruth:
    """MeViS: per frame, the ``(anno_id, COCO RLE)`` pairs of the expression's objects present there."""

    source: Path
    frames: tuple[tuple[tuple[str, dict[str, Any]], ...], ...]
    size: tuple[int, int] | None = None
    """``(H, W)`` of the video, from any RLE of its objects; None when none of them appears anywhere."""

    def mask(self, index: int, frame: str) -> np.ndarray | None:
        """The union of the objects' decoded RLEs at ``frame``.

        Where no object is present it is an empty mask of the video's `size`, so a prediction's size is
        checked there too; ``None`` only when the size is unknown.
        """
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
        if union is None and self.size is not None:
            return np.zeros(self.size, bool)
        return union


@dataclass(frozen=True)
class PaletteTruth:
    """Ref-YouTube-VOS / Ref-DAVIS: ``<annotations>/<frame>.png`` pixels equal to one of ``obj_ids``."""

    annotations: Path
    obj_ids: tuple[int, ...]

    def mask(self, index: int, frame: str) -> np.ndarray | None:
        """The pixels of ``<annotations>/<frame>.png`` holding one of the expression's object ids."""
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
class MaskTreeTruth:
    """A mask tree: ``<folder>/<frame>.png``, nonzero = foreground."""

    folder: Path

    def mask(self, index: int, frame: str) -> np.ndarray | None:
        """``<folder>/<frame>.png`` as `read_mask` reads it."""
        return read_mask(self.folder / f"{frame}.png")


@dataclass(frozen=True)
class ExpressionTask:
    """One expression of the ground truth: its frames in order and where their masks come from."""

    video: str
    exp_id: str
    text: str
    frames: tuple[str, ...]
    truth: TruthReader


@dataclass(frozen=True)
class MetaExpression:
    """One expression entry of ``meta_expressions.json``."""

    video: str
    exp_id: str
    frames: tuple[str, ...]
    entry: dict[str, Any]

    @property
    def text(self) -> str:
        """The referring expression (``"exp"``; empty when the entry has none)."""
        return str(self.entry.get("exp", ""))


def read_mask(path: Path) -> np.ndarray:
    """A mask image as a boolean ``(H, W)`` array: any nonzero pixel is the object, whatever the format.

    8-bit masks (0/255 or 0/1), 16-bit masks (0/1 or 0/65535), palette PNGs (a nonzero palette index,
    whatever its colour) and colour images (any nonzero colour channel; alpha is ignored) all read right.
    MeViS reads predictions with ``cv2.imread(path, cv2.IMREAD_GRAYSCALE)``: the same for 8-bit grayscale,
    but that scales 16-bit images down to 8 bits (so 0/1 reads as empty) and reads a palette PNG as the
    brightness of its colours (so an object drawn in black reads as empty).

    Raises:
        InputError: the file is missing or not an image.
    """
    try:
        data = path.read_bytes()
        # Pillow reads a palette PNG's indices; OpenCV only its colours. OpenCV keeps 16 bits per channel
        # in every colour type; Pillow keeps only the high byte of 16-bit colour PNGs.
        with Image.open(io.BytesIO(data)) as image:
            if image.mode == "P":
                return np.asarray(image) != 0
    except (OSError, UnidentifiedImageError):
        raise InputError(f"{path} is missing or not a readable image") from None
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise InputError(f"{path} is missing or not a readable image")
    if pixels.ndim == 3:
        colours = pixels.shape[2] - (pixels.shape[2] in (2, 4))  # gray+alpha, BGR+alpha: drop the alpha
        return np.any(pixels[:, :, :colours] != 0, axis=2)
    return pixels != 0


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


def parse_layout(layout: Layout | str) -> Layout:
    """``layout`` as a :class:`Layout`.

    Raises:
        InputError: it names no layout.
    """
    try:
        return Layout(layout)
    except ValueError:
        names = ", ".join(member.value for member in Layout)
        raise InputError(f"unknown ground-truth layout {layout!r}; expected one of {names}") from None


def find_meta(gt_root: Path, meta_path: Path | None, *, required: bool) -> Path | None:
    """The ``meta_expressions.json`` to read: `meta_path` if given, else the first of the usual places.

    The usual places are ``gt_root/meta_expressions.json`` and, as Ref-YouTube-VOS lays it out,
    ``gt_root/../meta_expressions/<split>/meta_expressions.json``.

    Raises:
        InputError: `meta_path` does not exist, or none is found and one is `required`.
    """
    if meta_path is not None:
        if not meta_path.is_file():
            raise InputError(f"meta file {meta_path} does not exist")
        return meta_path
    candidates = (gt_root / META_FILE, gt_root.parent / "meta_expressions" / gt_root.name / META_FILE)
    found = next((path for path in candidates if path.is_file()), None)
    if found is None and required:
        raise InputError(f"no {META_FILE} at {candidates[0]} or {candidates[1]}; give its path explicitly")
    return found


def load_tasks(layout: Layout, gt_root: Path, meta: Path | None) -> list[ExpressionTask]:
    """Every expression of the ground truth under `gt_root`, in the meta file's (or the tree's) order.

    Args:
        layout: how `gt_root` stores its masks.
        gt_root: the dataset split folder, or the mask tree.
        meta: the meta file (see `find_meta`); in a mask tree it only supplies the expression texts.

    Raises:
        InputError: a file is missing or malformed.
    """
    expressions = [] if meta is None else read_meta(meta)
    if layout == Layout.MASKS:
        texts = {(e.video, e.exp_id): e.text for e in expressions}
        return _mask_tree_tasks(gt_root, texts)
    if layout == Layout.MEVIS:
        return _mevis_tasks(expressions, gt_root / MASK_DICT_FILE, meta)
    return _palette_tasks(expressions, gt_root / ANNOTATIONS_DIR, meta)


def load_ground_truth(
    gt_root: Path, *, layout: Layout | str | None = None, meta_path: Path | None = None
) -> tuple[Layout, list[ExpressionTask]]:
    """The layout of `gt_root` (detected unless given) and its expressions (see `load_tasks`).

    Raises:
        InputError: the folder, its meta file or its masks are missing or malformed.
    """
    chosen = detect_layout(gt_root) if layout is None else parse_layout(layout)
    meta = find_meta(gt_root, meta_path, required=chosen != Layout.MASKS)
    return chosen, load_tasks(chosen, gt_root, meta)


def read_meta(path: Path) -> list[MetaExpression]:
    """All expressions of a ``meta_expressions.json``, in file order, checked for the keys we use.

    Video names, exp_ids and frame names become paths (``Annotations/<video>/<frame>.png``,
    ``PRED/<video>/<exp_id>/<frame>.png``), so each must be one plain name (`glus_cli.safe_names`).

    Raises:
        InputError: the file is missing, not JSON, lacks a video's frames or expressions, or holds a
            video name, exp_id or frame name that is not one plain name.
    """
    meta = read_json(path)
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
        name = checked_name(video, source=path, entry="video")
        names = tuple(checked_name(frame, source=path, entry=f"video {name!r}: frame") for frame in frames)
        for exp_id, exp in exps.items():
            exp_name = checked_name(exp_id, source=path, entry=f"video {name!r}: exp_id")
            expressions.append(MetaExpression(name, exp_name, names, exp))
    return expressions


def _mevis_tasks(
    expressions: Iterable[MetaExpression], mask_dict_path: Path, meta: Path | None
) -> list[ExpressionTask]:
    mask_dict = read_json(mask_dict_path)
    if not isinstance(mask_dict, dict):
        raise InputError(f"{mask_dict_path} is not a mask dictionary ({{anno_id: [RLE or null per frame]}})")
    expressions = list(expressions)
    sizes = _video_sizes(expressions, mask_dict)
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
        truth = RleTruth(
            mask_dict_path,
            tuple(tuple(frame_masks) for frame_masks in per_frame),
            sizes.get(expression.video),
        )
        tasks.append(_task(expression, truth))
    return tasks


def _video_sizes(expressions: list[MetaExpression], mask_dict: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """``(H, W)`` of each video, from the first COCO RLE of any of its expressions' objects (MeViS stores
    no frame size elsewhere; frames where an object is absent hold ``null``)."""
    sizes: dict[str, tuple[int, int]] = {}
    for expression in expressions:
        if expression.video in sizes:
            continue
        anno_ids = expression.entry.get("anno_id")
        for anno_id in anno_ids if isinstance(anno_ids, list) else [anno_ids]:
            masks = mask_dict.get(str(anno_id))
            found = (_rle_size(rle) for rle in masks) if isinstance(masks, list) else iter(())
            size = next((size for size in found if size is not None), None)
            if size is not None:
                sizes[expression.video] = size
                break
    return sizes


def _rle_size(rle: Any) -> tuple[int, int] | None:
    """The ``size`` ``[H, W]`` of a COCO RLE; None when it is empty or malformed (decoding reports that)."""
    size = rle.get("size") if isinstance(rle, dict) else None
    if isinstance(size, list) and len(size) == 2 and all(isinstance(side, int) for side in size):
        return size[0], size[1]
    return None


def _palette_tasks(
    expressions: Iterable[MetaExpression], annotations: Path, meta: Path | None
) -> list[ExpressionTask]:
    if not annotations.is_dir():
        raise InputError(f"ground-truth folder {annotations} does not exist")
    tasks = []
    where = {"source": meta or "the meta file", "entry": "video"}
    for expression in expressions:
        obj_ids = _ids(expression, "obj_id", meta)
        folder = child_path(annotations, expression.video, **where)
        tasks.append(_task(expression, PaletteTruth(folder, obj_ids)))
    return tasks


def _mask_tree_tasks(gt_root: Path, texts: dict[tuple[str, str], str]) -> list[ExpressionTask]:
    """One task per ``<video>/<exp_id>/`` folder holding PNGs, in natural order (as `glus batch` orders)."""
    tasks = []
    for video_dir in _subfolders(gt_root):
        for exp_dir in _subfolders(video_dir):
            frames = tuple(sorted((path.stem for path in exp_dir.glob("*.png")), key=natural_key))
            if frames:
                text = texts.get((video_dir.name, exp_dir.name), "")
                tasks.append(
                    ExpressionTask(video_dir.name, exp_dir.name, text, frames, MaskTreeTruth(exp_dir))
                )
    return tasks


def _subfolders(folder: Path) -> list[Path]:
    return sorted(
        (path for path in folder.iterdir() if path.is_dir()), key=lambda path: natural_key(path.name)
    )


def _task(expression: MetaExpression, truth: TruthReader) -> ExpressionTask:
    return ExpressionTask(expression.video, expression.exp_id, expression.text, expression.frames, truth)


def _ids(expression: MetaExpression, key: str, source: Path | None) -> tuple[int, ...]:
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
