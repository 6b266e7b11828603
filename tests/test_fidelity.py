"""The fidelity contract: one bound per dtype, and how two runs' results are compared."""

from __future__ import annotations

import numpy as np
import pytest

from glus_cli.errors import InputError
from glus_cli.fidelity import Agreement, compare_masks, compare_results, fidelity_bound
from glus_cli.protocol import FrameResult


def _result(expression: int, frame: int, mask: np.ndarray, is_seg: bool = True) -> FrameResult:
    return FrameResult(expression, frame, frame, "forward", mask, is_seg, 0.9 if is_seg else None, None)


def _mask(ones: int) -> np.ndarray:
    mask = np.zeros((10, 10), dtype=bool)
    mask.flat[:ones] = True
    return mask


def test_one_bound_per_dtype_whatever_the_spelling() -> None:
    assert fidelity_bound("float32").min_iou == fidelity_bound("fp32").min_iou == 0.999
    assert fidelity_bound("bfloat16").min_iou == fidelity_bound("bf16").min_iou == 0.97
    assert fidelity_bound("float16").min_iou == 0.97
    with pytest.raises(ValueError, match="resolve it to a dtype"):
        fidelity_bound("auto")
    with pytest.raises(InputError, match="unknown dtype"):
        fidelity_bound("half")


def test_results_are_matched_by_expression_and_frame_not_by_order() -> None:
    """`reference` yields per expression, the fast schedules per frame: the order must not matter."""
    reference = [
        _result(0, 0, _mask(50)),
        _result(0, 1, _mask(40)),
        _result(1, 0, _mask(30)),
        _result(1, 1, _mask(0)),
    ]
    fast = [reference[0], reference[2], _result(0, 1, _mask(39)), reference[3]]
    agreement = compare_results(fast, reference)
    assert agreement == Agreement(
        frames=4, same_decisions=True, min_iou=39 / 40, mean_iou=(3 + 39 / 40) / 4, identical=False
    )
    assert compare_results(reference[::-1], reference).identical


def test_a_changed_decision_breaks_every_bound() -> None:
    reference = [_result(0, 0, _mask(0), is_seg=False)]
    fast = [_result(0, 0, _mask(0), is_seg=True)]
    agreement = compare_results(fast, reference)
    assert agreement.min_iou == 1.0 and not agreement.same_decisions  # both empty, yet another decision
    assert not fidelity_bound("bfloat16").holds(agreement)


def test_the_bound_is_the_lowest_frame_not_the_mean() -> None:
    agreement = compare_masks([_mask(100), _mask(96)], [_mask(100), _mask(100)])
    assert (agreement.min_iou, agreement.mean_iou) == (0.96, 0.98)
    assert not fidelity_bound("bfloat16").holds(agreement)
    assert fidelity_bound("bfloat16").holds(compare_masks([_mask(97)], [_mask(100)]))
    assert not fidelity_bound("float32").holds(compare_masks([_mask(99)], [_mask(100)]))


def test_runs_of_other_frames_are_refused() -> None:
    with pytest.raises(ValueError, match="different frames"):
        compare_results([_result(0, 0, _mask(1))], [_result(0, 1, _mask(1))])
    with pytest.raises(ValueError, match="no masks"):
        compare_masks([], [])
