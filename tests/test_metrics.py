"""J and F on small masks whose values are worked out by hand.

Most cases use a 10x10 frame, where the boundary tolerance is ``ceil(0.008 * sqrt(10² + 10²))`` =
``ceil(0.113)`` = 1 pixel, so the structuring element is the 3x3 cross ``disk(1)``: a boundary pixel
matches when the other boundary passes through it or one of its 4 neighbours.

Boundary maps follow DAVIS ``_seg2bmap``: the boundary of a filled box with rows ``r0..r1`` and columns
``c0..c1`` is the 1-pixel outline of the box with rows ``r0-1..r1`` and columns ``c0-1..c1`` (outside
on the top and left, inside on the bottom and right). For the 4x4 ground-truth box ``GT_BOX`` (rows and
columns 2..5) that is the outline of rows/columns 1..5: 16 pixels.
"""

from __future__ import annotations

import numpy as np
import pytest

from glus_cli.metrics import boundary_f_measure, boundary_map, disk, region_similarity

GT_BOX = (slice(2, 6), slice(2, 6))


def box(rows: tuple[int, int], cols: tuple[int, int], shape: tuple[int, int] = (10, 10)) -> np.ndarray:
    """A uint8 mask with ones on rows ``rows[0]..rows[1]`` and columns ``cols[0]..cols[1]`` (inclusive)."""
    mask = np.zeros(shape, np.uint8)
    mask[rows[0] : rows[1] + 1, cols[0] : cols[1] + 1] = 1
    return mask


def outline(rows: tuple[int, int], cols: tuple[int, int], shape: tuple[int, int] = (10, 10)) -> np.ndarray:
    """The 1-pixel outline of the box with the given inclusive rows and columns."""
    filled = box(rows, cols, shape).astype(bool)
    filled[rows[0] + 1 : rows[1], cols[0] + 1 : cols[1]] = False
    return filled


GT = box((2, 5), (2, 5))


def test_identical_masks_score_one() -> None:
    assert region_similarity(GT, GT) == 1.0
    assert boundary_f_measure(GT, GT) == 1.0


def test_any_nonzero_value_is_foreground() -> None:
    assert region_similarity(GT * 255, GT) == 1.0
    assert boundary_f_measure(GT * 7, GT.astype(bool)) == 1.0


def test_disjoint_masks_score_zero() -> None:
    far = box((7, 8), (7, 8))  # boundary rows/cols 6..8: at least 1 pixel diagonal away, not a 4-neighbour
    assert region_similarity(far, GT) == 0.0
    assert boundary_f_measure(far, GT) == 0.0


def test_half_overlap() -> None:
    # Prediction: the left half of GT_BOX (columns 2..3). J = 8 / 16.
    pred = box((2, 5), (2, 3))
    assert region_similarity(pred, GT) == pytest.approx(1 / 2)
    # Prediction boundary: outline of rows 1..5, columns 1..3 (12 px). All lie on the GT outline except
    # the right column (3, 2..4); of these (2,3) touches (1,3) and (4,3) touches (5,3): precision 11/12.
    # GT outline (16 px): the top and bottom rows miss column 5 (2 px), the right column (2..4, 5) is two
    # pixels from column 3 (3 px): recall 11/16. F = 2·(11/12)(11/16) / (11/12 + 11/16) = 11/14.
    assert boundary_f_measure(pred, GT) == pytest.approx(11 / 14)


def test_one_pixel_shift_is_within_the_tolerance() -> None:
    # Shifted right by one: J = 12 / 20. Outline columns 2..6 vs 1..5: every pixel of one outline is on
    # the other or one column beside it, so with the 1-pixel tolerance precision = recall = 1.
    pred = box((2, 5), (3, 6))
    assert region_similarity(pred, GT) == pytest.approx(12 / 20)
    assert boundary_f_measure(pred, GT) == 1.0
    # With zero tolerance (bound_th=0 → radius ceil(0) = 0) only coinciding pixels match: the top and
    # bottom rows share columns 2..5 (8 px); the side columns 1, 2, 5, 6 never coincide. P = R = 8/16.
    assert boundary_f_measure(pred, GT, bound_th=0) == pytest.approx(1 / 2)


def test_two_pixel_shift() -> None:
    # Shifted right by two: J = 8 / 24. Prediction outline: rows 1..5, columns 3..7.
    pred = box((2, 5), (4, 7))
    assert region_similarity(pred, GT) == pytest.approx(1 / 3)
    # Precision: top and bottom rows match at columns 3..6 (column 7 is two away): 8; left column 3 matches
    # at rows 2 and 4 (next to the GT top/bottom rows), not row 3: 2; right column 7: 0. 10/16.
    # Recall is the mirror image: 10/16, so F = 10/16.
    assert boundary_f_measure(pred, GT) == pytest.approx(10 / 16)


def test_tolerance_grows_with_the_frame_diagonal() -> None:
    # 200x200: radius ceil(0.008 · 282.8) = ceil(2.26) = 3 pixels, so a two-pixel shift is tolerated.
    shape = (200, 200)
    assert boundary_f_measure(box((2, 5), (4, 7), shape), box((2, 5), (2, 5), shape)) == 1.0
    # bound_th >= 1 is a radius in pixels.
    assert boundary_f_measure(box((2, 5), (4, 7)), GT, bound_th=2) == 1.0


def test_empty_ground_truth_and_empty_prediction_score_one() -> None:
    empty = np.zeros((10, 10), np.uint8)
    assert region_similarity(empty, empty) == 1.0
    assert boundary_f_measure(empty, empty) == 1.0


def test_empty_ground_truth_with_a_prediction_scores_zero() -> None:
    empty = np.zeros((10, 10), np.uint8)
    assert region_similarity(GT, empty) == 0.0
    assert boundary_f_measure(GT, empty) == 0.0  # precision 0, recall 1


def test_ground_truth_with_an_empty_prediction_scores_zero() -> None:
    empty = np.zeros((10, 10), np.uint8)
    assert region_similarity(empty, GT) == 0.0
    assert boundary_f_measure(empty, GT) == 0.0  # precision 1, recall 0


def test_full_frame_prediction_has_no_boundary() -> None:
    # A DAVIS quirk kept on purpose: a full-frame mask has an empty boundary map, so against an empty
    # ground truth both boundaries are empty and F = 1, while J = 0.
    full = np.ones((10, 10), np.uint8)
    empty = np.zeros((10, 10), np.uint8)
    assert not boundary_map(full).any()
    assert region_similarity(full, empty) == 0.0
    assert boundary_f_measure(full, empty) == 1.0


def test_boundary_map_of_a_box() -> None:
    assert np.array_equal(boundary_map(GT), outline((1, 5), (1, 5)))
    assert np.count_nonzero(boundary_map(GT)) == 16


def test_boundary_map_ignores_the_bottom_and_right_frame_borders() -> None:
    # A box filling rows 6..9 and columns 6..9 touches the bottom-right corner: only its outside top row
    # and left column remain (rows/columns 5..9 outline minus the part on the frame border).
    expected = np.zeros((10, 10), bool)
    expected[5, 5:] = True
    expected[5:, 5] = True
    assert np.array_equal(boundary_map(box((6, 9), (6, 9))), expected)


def test_boundary_map_matches_the_davis_formulation() -> None:
    # DAVIS builds the map from zero-filled right / down / down-right shifted copies, then recomputes the
    # last row from the right neighbour only and the last column from the lower neighbour only, and
    # clears the last pixel. boundary_map replicates the edge instead; the maps must agree.
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (1, 6), (6, 1), (7, 9), (16, 16)]:
        for _ in range(20):
            seg = rng.random(shape) < rng.random()
            right, down, diagonal = (np.zeros_like(seg) for _ in range(3))
            right[:, :-1] = seg[:, 1:]
            down[:-1, :] = seg[1:, :]
            diagonal[:-1, :-1] = seg[1:, 1:]
            expected = (seg ^ right) | (seg ^ down) | (seg ^ diagonal)
            expected[-1, :] = seg[-1, :] ^ right[-1, :]
            expected[:, -1] = seg[:, -1] ^ down[:, -1]
            expected[-1, -1] = False
            assert np.array_equal(boundary_map(seg), expected)


@pytest.mark.parametrize("radius", range(1, 11))
def test_disk_equals_the_scikit_image_definition(radius: int) -> None:
    # skimage.morphology.disk(r): X, Y = meshgrid(arange(-r, r + 1)) and X² + Y² <= r², as uint8.
    grid = np.arange(-radius, radius + 1)
    x, y = np.meshgrid(grid, grid)
    expected = ((x**2 + y**2) <= radius**2).astype(np.uint8)
    assert disk(radius).dtype == np.uint8
    assert np.array_equal(disk(radius), expected)
    assert np.array_equal(disk(float(radius)), expected)  # the reference passes np.ceil(...), a float


def test_small_disks_by_hand() -> None:
    assert disk(0).tolist() == [[1]]
    assert disk(1).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    assert disk(2).tolist() == [
        [0, 0, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [1, 1, 1, 1, 1],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 0, 0],
    ]


def test_shape_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match="same shape"):
        region_similarity(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="same shape"):
        boundary_f_measure(np.zeros((4, 4)), np.zeros((4, 5)))
