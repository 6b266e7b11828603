"""COCO instance segmentation: ``annotations/instances_default.json`` and ``images/`` (CVAT's "COCO 1.0").

- ``images``: one per frame of every exported video: ``id``, ``file_name`` (``<video>/<image file>``,
  relative to the frames' root and to the output's ``images/``, which links to the frames or, with
  ``--copy``, holds copies), ``width``, ``height``, and ``video``, ``frame`` (the frame's name) and
  ``frame_index``.
- ``categories``: see `glus_cli.export.categories`.
- ``annotations``: one per kept frame of every expression: compressed RLE (``--polygons``: polygons, one
  per part, holes bridged, see `glus_cli.export.geometry`), ``bbox``, ``area``, ``iscrowd`` 0,
  ``attributes.track_id`` (one per expression; CVAT imports annotations sharing a ``track_id`` as a
  track), and SAM2's ``predicted_iou`` and ``object_score``.

Annotations are streamed to a part file while the masks are read, then the document is assembled, so a
whole batch never sits in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glus_cli.export.categories import Categories
from glus_cli.export.geometry import encode_rle, mask_polygons, rle_area_and_box
from glus_cli.export.instances import Instance, VideoExport
from glus_cli.export.output import JsonArrayWriter, write_streamed_document

ANNOTATIONS_FILE = "annotations/instances_default.json"


class CocoExporter:
    """Writes one COCO file for every video given to `add_video`."""

    def __init__(self, out: Path, categories: Categories, *, polygons: bool) -> None:
        self._out = out
        self._categories = categories
        self._polygons = polygons
        self._images: list[dict[str, Any]] = []
        self._annotations = JsonArrayWriter(out / ".annotations.part.json")

    def add_video(self, video: VideoExport) -> None:
        """Add `video`'s frames as images and its kept masks as annotations."""
        height, width = video.frames.frame_size
        first_id = len(self._images) + 1
        for index, name in enumerate(video.frames.frame_names):
            self._images.append(
                {
                    "id": first_id + index,
                    "file_name": video.file_names[index],
                    "width": width,
                    "height": height,
                    "video": video.name,
                    "frame": name,
                    "frame_index": index,
                }
            )
        for track in video.tracks:
            for instance in video.instances(track):
                self._annotations.add(self._annotation(instance, first_id + instance.frame_index))

    def _annotation(self, instance: Instance, image_id: int) -> dict[str, Any]:
        rle = encode_rle(instance.mask)
        area, box = rle_area_and_box(rle)
        segmentation: Any = rle
        if self._polygons:
            segmentation = [
                [round(float(v), 2) for v in polygon.ravel()] for polygon in mask_polygons(instance.mask)
            ]
        return {
            "id": self._annotations.count + 1,
            "image_id": image_id,
            "category_id": instance.track.category_id,
            "segmentation": segmentation,
            "area": float(area),
            "bbox": box,
            "iscrowd": 0,
            "attributes": {"track_id": instance.track.track_id},
            "predicted_iou": instance.answer.predicted_iou,
            "object_score": instance.answer.object_score,
        }

    def finish(self) -> list[str]:
        """Assemble the COCO file; return the files written, relative to the output folder."""
        target = self._out / ANNOTATIONS_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        head = {**self._categories.dataset_head(), "images": self._images}
        write_streamed_document(target, head, "annotations", self._annotations)
        return [ANNOTATIONS_FILE]
