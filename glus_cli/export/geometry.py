"""Masks as the formats store them: COCO RLE, bounding boxes, polygons (one per part, holes bridged).

Polygons come from OpenCV's contours (`cv2.findContours` with ``RETR_CCOMP``: each part's outer boundary
and its holes). Polygon formats have no holes, so each hole is joined to its part's outline by a
zero-width cut: the outline runs to the hole's nearest vertex, around the hole (OpenCV winds holes against
their outline), and back. A rasteriser then leaves the hole empty apart from the pixels on the cut.
A part too thin to give three contour points is written as the rectangle through its pixels.

Vertex coordinates are continuous, pixel ``x`` spanning ``[x, x + 1)`` (COCO's convention), and each vertex
sits on its contour pixel's centre, ``x + 0.5``. pycocotools rasterises such polygons closest to the mask,
and Ultralytics, which truncates scaled coordinates to integers before `cv2.fillPoly`, fills back the
contour pixels exactly. A polygon through the border pixels' centres still loses up to half a pixel along
the border under pycocotools (IoU 0.83 for a 10 x 10 square, more for larger masks): RLE is the exact form.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

MIN_POLYGON_POINTS = 3
PIXEL_CENTRE = 0.5


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """Compressed COCO RLE of a bool (H, W) mask, with ``counts`` as an ASCII string (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_area_and_box(rle: dict[str, Any]) -> tuple[int, list[float]]:
    """Pixel count and ``[x, y, width, height]`` bounding box of an RLE from `encode_rle`."""
    encoded = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return int(mask_utils.area(encoded)), [float(v) for v in mask_utils.toBbox(encoded)]


def mask_polygons(mask: np.ndarray) -> list[np.ndarray]:
    """One polygon per connected part of a bool (H, W) mask, holes bridged in: float (K, 2) ``(x, y)``
    vertices, K >= 3, on pixel centres (see the module docstring)."""
    contours, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    links = hierarchy[0]  # per contour: next, previous, first child, parent
    polygons = []
    for index, contour in enumerate(contours):
        if links[index][3] != -1:  # a hole: bridged into its part below
            continue
        outline = _at_least_three(contour.reshape(-1, 2))
        child = links[index][2]
        while child != -1:
            hole = contours[child].reshape(-1, 2)
            if len(hole) >= MIN_POLYGON_POINTS:
                outline = _bridge(outline, hole)
            child = links[child][0]
        polygons.append(outline.astype(np.float64) + PIXEL_CENTRE)
    return polygons


def _at_least_three(points: np.ndarray) -> np.ndarray:
    """The contour, or for a dot or a line (fewer than three points) the rectangle through its pixels'
    centres, which `cv2.fillPoly` fills back to exactly those pixels (pycocotools, to almost nothing)."""
    if len(points) >= MIN_POLYGON_POINTS:
        return points
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


def _bridge(outline: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """`outline` with `hole` joined in by a zero-width cut between their closest vertices."""
    distances = ((outline[:, None, :] - hole[None, :, :]) ** 2).sum(axis=-1)
    i, j = np.unravel_index(int(np.argmin(distances)), distances.shape)
    around = np.concatenate([hole[j:], hole[: j + 1]])  # OpenCV winds holes against their outline
    return np.concatenate([outline[: i + 1], around, outline[i:]])
