"""Referring video object segmentation metrics: region similarity J and boundary F-measure F.

These reproduce, value for value, the per-frame functions of the DAVIS 2017 evaluation
(davisvideochallenge/davis2017-evaluation ``davis2017/metrics.py`` at ac7c43f: ``db_eval_iou`` lines
6-37, ``f_measure`` 57-119, ``_seg2bmap`` 122-178). MeViS ``tools/metrics.py`` (7c0620b) is the same
file byte for byte, and GLUS ``utils/metrics.py`` (8fd138b) the same code 39 lines further down:

- :func:`region_similarity` is ``db_eval_iou`` (J): intersection over union of the two masks, and 1
  when the union is empty.
- :func:`boundary_f_measure` is ``db_eval_boundary`` / ``f_measure`` (F): one-pixel boundary maps
  (:func:`boundary_map`, their ``_seg2bmap``), each dilated with a disk of radius
  ``ceil(bound_th * ||(H, W)||)`` pixels (:func:`disk`, scikit-image's ``disk``) by ``cv2.dilate``;
  precision is the share of predicted boundary pixels within that tolerance of the ground-truth
  boundary, recall the converse, F their harmonic mean.

Masks are 2-D arrays of shape ``(H, W)``; any nonzero value is foreground. The void-pixel argument of
the reference functions is not offered: MeViS, Ref-YouTube-VOS and Ref-DAVIS scoring never pass one.
"""

from __future__ import annotations

import cv2
import numpy as np

DEFAULT_BOUND_TH = 0.008
"""Boundary tolerance of DAVIS and MeViS, as a fraction of the image diagonal."""


def region_similarity(pred: np.ndarray, gt: np.ndarray) -> float:
    """Region similarity J: ``|pred ∩ gt| / |pred ∪ gt|`` of two ``(H, W)`` masks.

    Convention (``db_eval_iou``): when both masks are empty the union is empty and J is 1, so an
    empty prediction of an absent object is a perfect score.

    Args:
        pred: Predicted mask, nonzero = foreground.
        gt: Ground-truth mask of the same shape, nonzero = foreground.

    Returns:
        J in ``[0, 1]``.

    Raises:
        ValueError: The masks are not 2-D arrays of the same shape.
    """
    pred_fg, gt_fg = _as_foreground(pred, gt)
    union = np.count_nonzero(pred_fg | gt_fg)
    if union == 0:
        return 1.0
    return np.count_nonzero(pred_fg & gt_fg) / union


def boundary_f_measure(pred: np.ndarray, gt: np.ndarray, bound_th: float = DEFAULT_BOUND_TH) -> float:
    """Boundary F-measure F of two ``(H, W)`` masks, as DAVIS ``db_eval_boundary`` computes it.

    The tolerance radius is ``ceil(bound_th * sqrt(H² + W²))`` pixels when ``bound_th < 1`` (with the
    default 0.008, 12 pixels for 720x1280) and ``bound_th`` pixels otherwise. A predicted boundary
    pixel counts as matched when a ground-truth boundary pixel lies within the disk of that radius
    around it (and conversely for recall).

    Conventions for empty boundaries (``f_measure``), ``n_pred`` / ``n_gt`` being the boundary pixel
    counts:

    - ``n_pred == 0`` and ``n_gt > 0``: precision 1, recall 0, so F = 0;
    - ``n_pred > 0`` and ``n_gt == 0``: precision 0, recall 1, so F = 0;
    - both 0: precision = recall = 1, so F = 1 (note: a mask covering the whole frame has no
      boundary, see :func:`boundary_map`);
    - precision + recall == 0: F = 0.

    Args:
        pred: Predicted mask, nonzero = foreground.
        gt: Ground-truth mask of the same shape, nonzero = foreground.
        bound_th: Tolerance: a fraction of the image diagonal if below 1, else a radius in pixels.

    Returns:
        F in ``[0, 1]``.

    Raises:
        ValueError: The masks are not 2-D arrays of the same shape.
    """
    pred_fg, gt_fg = _as_foreground(pred, gt)
    radius = bound_th if bound_th >= 1 else float(np.ceil(bound_th * np.linalg.norm(gt_fg.shape)))
    footprint = disk(radius)

    pred_boundary = boundary_map(pred_fg)
    gt_boundary = boundary_map(gt_fg)
    n_pred = np.count_nonzero(pred_boundary)
    n_gt = np.count_nonzero(gt_boundary)

    if n_pred == 0 and n_gt == 0:
        return 1.0
    if n_pred == 0 or n_gt == 0:
        return 0.0

    pred_dilated = cv2.dilate(pred_boundary.astype(np.uint8), footprint).astype(bool)
    gt_dilated = cv2.dilate(gt_boundary.astype(np.uint8), footprint).astype(bool)
    precision = np.count_nonzero(pred_boundary & gt_dilated) / n_pred
    recall = np.count_nonzero(gt_boundary & pred_dilated) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary of a ``(H, W)`` mask, as DAVIS ``_seg2bmap`` draws it.

    A pixel is on the boundary when it differs from its right, lower or lower-right neighbour, so the
    boundary lies half a pixel towards the origin: on the outside of the top and left edges of a
    region, on the inside of its bottom and right edges. Outside the frame the mask is taken to
    continue its last row and column, hence foreground touching the bottom or right border has no
    boundary there, and a mask covering the whole frame has no boundary at all. (The reference code
    zero-fills the shifted copies and then recomputes the last row and column; replicating the edge
    gives the same map.)

    Args:
        mask: Mask, nonzero = foreground.

    Returns:
        Boolean array of the mask's shape.
    """
    fg = np.asarray(mask).astype(bool)
    padded = np.pad(fg, ((0, 1), (0, 1)), mode="edge")
    right = padded[:-1, 1:]
    below = padded[1:, :-1]
    below_right = padded[1:, 1:]
    return (fg != right) | (fg != below) | (fg != below_right)


def disk(radius: float) -> np.ndarray:
    """Disk structuring element: ``uint8`` array of side ``2r + 1`` with ones where ``x² + y² <= r²``.

    This is scikit-image's ``skimage.morphology.disk(radius)`` with its defaults
    (``strict_radius=True, decomposition=None``), which the DAVIS and MeViS evaluations pass to
    ``cv2.dilate``; it is rebuilt here with numpy so that glus-cli does not depend on scikit-image.
    Like the original it accepts a float radius (the reference passes ``np.ceil(...)``, a float):
    offsets run over ``arange(-r, r + 1)``.

    Args:
        radius: Radius in pixels.

    Returns:
        The footprint, shape ``(n, n)`` with ``n = len(arange(-r, r + 1))``.
    """
    offsets = np.arange(-radius, radius + 1)
    squared = offsets[:, None] ** 2 + offsets[None, :] ** 2
    return (squared <= radius**2).astype(np.uint8)


def _as_foreground(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean foreground of two masks, after checking they are 2-D and of the same shape."""
    pred_fg = np.asarray(pred).astype(bool)
    gt_fg = np.asarray(gt).astype(bool)
    if pred_fg.ndim != 2 or pred_fg.shape != gt_fg.shape:
        raise ValueError(f"masks must be 2-D and of the same shape, got {pred_fg.shape} and {gt_fg.shape}")
    return pred_fg, gt_fg
