"""YouTube-VIS (2019/2021) JSON, the format video instance segmentation trainers and evaluators read.

``instances.json`` (the dataset flavour):

- ``videos``: ``id``, ``file_names`` (one per frame, ``<video>/<image file>``, relative to the frames' root
  and to the output's ``images/``, as for COCO), ``width``, ``height``, ``length``, and ``name``;
- ``annotations``: one per expression (a track): ``segmentations``, ``bboxes`` and ``areas`` with one entry
  per frame of the video, a compressed RLE / ``[x, y, w, h]`` / pixel count where the mask was kept and
  ``null`` where the object is absent or the frame was filtered out; ``category_id``, ``iscrowd`` 0, and
  ``track_id``, ``exp_id`` and ``expression``;
- ``categories``.

``results.json`` (``--results``, what the YTVIS evaluators take): a list of ``video_id``, ``category_id``,
``segmentations`` and ``score`` per track. The score is the track's mean confidence over its kept frames,
SAM2's predicted IoU x sigmoid(object score) (`glus_cli.keyframes.confidence`); a track with no kept frame
is left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glus_cli.confidence import confidence
from glus_cli.export.categories import Categories
from glus_cli.export.geometry import encode_rle, rle_area_and_box
from glus_cli.export.instances import VideoExport
from glus_cli.export.output import JsonArrayWriter, write_streamed_document

INSTANCES_FILE = "instances.json"
RESULTS_FILE = "results.json"


class YtvisExporter:
    """Writes one YouTube-VIS file (dataset or results flavour) for every video given to `add_video`."""

    def __init__(self, out: Path, categories: Categories, *, results: bool) -> None:
        self._out = out
        self._categories = categories
        self._results = results
        self._videos: list[dict[str, Any]] = []
        self._tracks = JsonArrayWriter(out / ".tracks.part.json")

    def add_video(self, video: VideoExport) -> None:
        """Add `video` and one track per expression."""
        height, width = video.frames.frame_size
        video_id = len(self._videos) + 1
        self._videos.append(
            {
                "id": video_id,
                "name": video.name,
                "file_names": video.file_names,
                "width": width,
                "height": height,
                "length": video.frames.num_frames,
            }
        )
        for track in video.tracks:
            length = video.frames.num_frames
            segmentations: list[dict[str, Any] | None] = [None] * length
            boxes: list[list[float] | None] = [None] * length
            areas: list[float | None] = [None] * length
            scores = []
            for instance in video.instances(track):
                rle = encode_rle(instance.mask)
                area, box = rle_area_and_box(rle)
                segmentations[instance.frame_index] = rle
                boxes[instance.frame_index] = box
                areas[instance.frame_index] = float(area)
                scores.append(confidence(instance.answer.predicted_iou, instance.answer.object_score))
            if self._results:
                if scores:
                    self._tracks.add(
                        {
                            "video_id": video_id,
                            "category_id": track.category_id,
                            "segmentations": segmentations,
                            "score": sum(scores) / len(scores),
                        }
                    )
                continue
            self._tracks.add(
                {
                    "id": track.track_id,
                    "video_id": video_id,
                    "category_id": track.category_id,
                    "segmentations": segmentations,
                    "bboxes": boxes,
                    "areas": areas,
                    "iscrowd": 0,
                    "track_id": track.track_id,
                    "exp_id": track.expression.exp_id,
                    "expression": track.expression.text,
                }
            )

    def finish(self) -> list[str]:
        """Write the file; return the files written, relative to the output folder."""
        name = RESULTS_FILE if self._results else INSTANCES_FILE
        if self._results:
            with (self._out / name).open("w", encoding="utf-8") as file:
                self._tracks.copy_to(file)
                file.write("\n")
            self._tracks.path.unlink()
        else:
            head = {**self._categories.dataset_head(), "videos": self._videos}
            write_streamed_document(self._out / name, head, "annotations", self._tracks)
        return [name]
