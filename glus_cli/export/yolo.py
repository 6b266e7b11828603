"""Ultralytics YOLO segmentation: ``images/train/``, ``labels/train/`` and ``data.yaml``.

Every frame of every exported video becomes ``images/train/<video>__<frame><ext>`` (a symbolic link to the
frame, or a copy with ``--copy``; a frame decoded from a video file is written as JPEG) and
``labels/train/<video>__<frame>.txt`` with one line per instance part: ``<class> x1 y1 x2 y2 ...``,
coordinates normalised by the frame's width and height. Ultralytics pairs a label with its image by
replacing ``/images/`` with ``/labels/``; the video is in the file name because several tools (Datumaro
among them) pair them by file name alone. A frame without instances gets an empty label file, which
Ultralytics reads as a background image.

YOLO polygons have no holes and one polygon per line, so a mask with several parts gives one line per
part, and holes are bridged into their part (`glus_cli.export.geometry`). Vertices sit on pixel centres,
which Ultralytics (truncating the scaled coordinates, then `cv2.fillPoly`) fills back to the contour
pixels exactly. ``data.yaml`` names the classes
(category id - 1) and uses the same images for ``train`` and ``val``: split them as the training needs.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import yaml

from glus_cli.export.categories import Categories
from glus_cli.export.geometry import mask_polygons
from glus_cli.export.instances import VideoExport
from glus_cli.export.output import place_image

IMAGES_DIR = "images/train"
LABELS_DIR = "labels/train"
DATA_FILE = "data.yaml"
SEPARATOR = "__"
"""Between the video's and the frame's name in image and label file names."""
DECIMALS = 6


class YoloExporter:
    """Writes one YOLO segmentation tree for every video given to `add_video`."""

    def __init__(self, out: Path, categories: Categories, *, copy: bool) -> None:
        self._out = out
        self._categories = categories
        self._copy = copy
        (out / IMAGES_DIR).mkdir(parents=True)
        (out / LABELS_DIR).mkdir(parents=True)

    def add_video(self, video: VideoExport) -> None:
        """Write `video`'s images and one label file per frame."""
        height, width = video.frames.frame_size
        lines: dict[int, list[str]] = defaultdict(list)
        for track in video.tracks:
            for instance in video.instances(track):
                for polygon in mask_polygons(instance.mask):
                    xy = (polygon / [width, height]).clip(0.0, 1.0).ravel()
                    coordinates = " ".join(f"{value:.{DECIMALS}f}" for value in xy)
                    lines[instance.frame_index].append(f"{instance.track.category_id - 1} {coordinates}")
        for index, name in enumerate(video.frames.frame_names):
            stem = f"{video.name}{SEPARATOR}{name}"
            place_image(
                video.frames, index, video.image_file(index), self._out / IMAGES_DIR / stem, copy=self._copy
            )
            text = "".join(line + "\n" for line in lines.pop(index, []))
            (self._out / LABELS_DIR / f"{stem}.txt").write_text(text, encoding="utf-8")

    def finish(self) -> list[str]:
        """Write ``data.yaml``; return the files and folders written, relative to the output folder."""
        data = {  # no `path`: Ultralytics then resolves the folders from this file's own folder
            "train": IMAGES_DIR,
            "val": IMAGES_DIR,
            "names": dict(enumerate(self._categories.names)),
        }
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        (self._out / DATA_FILE).write_text(text, encoding="utf-8")
        return [DATA_FILE, IMAGES_DIR, LABELS_DIR]
