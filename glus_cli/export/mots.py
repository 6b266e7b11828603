"""MOTS PNG: ``instances/<video>/<frame>.png``, 16-bit, pixel = class * 1000 + track, 0 background.

The class is the category id (1-based; ``instances/labels.txt`` lists the category names, one per line, in
id order, as Datumaro reads it) and the track is the expression's 1-based number within its video. So a
video may have at most 999 expressions and an export at most 65 categories (65 * 1000 + 999 < 65536).
``images/<video>/<frame><ext>`` links (or, with ``--copy``, copies) each frame, as CVAT and Datumaro expect.

A pixel holds one instance, so overlapping masks of one frame follow one rule: the instance with the
highest SAM2 predicted IoU wins (a tie goes to the expression listed first; a frame without ``[SEG]``,
kept with ``--no-require-seg``, ranks lowest). Every pixel covered by more than one instance is counted in
``overlap_pixels``. A video's kept masks wait as COCO RLE (a few kB a frame) until its frames are composed.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from glus_cli.errors import InputError
from glus_cli.export.categories import Categories
from glus_cli.export.instances import VideoExport
from glus_cli.export.output import place_image

INSTANCES_DIR = "instances"
IMAGES_DIR = "images"
LABELS_FILE = "instances/labels.txt"
CLASS_FACTOR = 1000
MAX_CLASS = (2**16 - 1) // CLASS_FACTOR - 1
"""65: the largest class whose every id, up to class * 1000 + 999, fits in 16 bits."""
MAX_TRACKS = CLASS_FACTOR - 1


class MotsExporter:
    """Writes one MOTS PNG tree for every video given to `add_video`."""

    def __init__(self, out: Path, categories: Categories, *, copy: bool) -> None:
        if len(categories.names) > MAX_CLASS:
            raise InputError(
                f"MOTS ids hold at most {MAX_CLASS} classes, but this export has {len(categories.names)} "
                "categories (one per distinct expression); use --category or --categories"
            )
        self._out = out
        self._categories = categories
        self._copy = copy
        self.overlap_pixels = 0

    def add_video(self, video: VideoExport) -> None:
        """Write one instance PNG and one image per frame of `video`."""
        if len(video.tracks) > MAX_TRACKS:
            raise InputError(
                f"MOTS ids hold at most {MAX_TRACKS} tracks per video, but {video.name!r} has "
                f"{len(video.tracks)} expressions"
            )
        # Per frame: (rank, RLE, instance id), the masks kept compressed until the frame is composed.
        frames: dict[int, list[tuple[tuple[float, int], dict, int]]] = defaultdict(list)
        for order, track in enumerate(video.tracks):
            instance_id = track.category_id * CLASS_FACTOR + track.local_id
            for instance in video.instances(track):
                iou = instance.answer.predicted_iou
                rank = (-(iou if iou is not None and instance.answer.seg else -math.inf), order)
                rle = mask_utils.encode(np.asfortranarray(instance.mask, dtype=np.uint8))
                frames[instance.frame_index].append((rank, rle, instance_id))
        folder = self._out / INSTANCES_DIR / video.name
        folder.mkdir(parents=True, exist_ok=True)
        for index, name in enumerate(video.frames.frame_names):
            ids = self._compose(
                video.frames.frame_size, sorted(frames.pop(index, []), key=lambda item: item[0])
            )
            buffer = io.BytesIO()
            Image.fromarray(ids).save(buffer, format="PNG")
            (folder / f"{name}.png").write_bytes(buffer.getvalue())
            place_image(
                video.frames,
                index,
                video.image_file(index),
                self._out / IMAGES_DIR / video.name / name,
                copy=self._copy,
            )

    def _compose(
        self, size: tuple[int, int], ranked: list[tuple[tuple[float, int], dict, int]]
    ) -> np.ndarray:
        """The uint16 id image of one frame: best-ranked instance first, later ones only on free pixels."""
        ids = np.zeros(size, dtype=np.uint16)
        coverage = np.zeros(size, dtype=np.uint16)
        for _, rle, instance_id in ranked:
            mask = mask_utils.decode(rle).astype(bool)
            coverage += mask
            ids[mask & (ids == 0)] = instance_id
        self.overlap_pixels += int((coverage > 1).sum())
        return ids

    def finish(self) -> list[str]:
        """Write ``instances/labels.txt``; return the files and folders written."""
        labels = self._out / LABELS_FILE
        labels.parent.mkdir(parents=True, exist_ok=True)
        labels.write_text(
            "".join(name.replace("\n", " ") + "\n" for name in self._categories.names), encoding="utf-8"
        )
        return [INSTANCES_DIR, IMAGES_DIR]
