"""Frame sampling: the official context-frame formulas and the query passes (glus-spec §5, reference §4)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from glus_cli.errors import InputError
from glus_cli.protocol import QueryPass, context_frame_indices, query_passes


def official_clips(num_frames: int, num_context_frames: int) -> list[int]:
    """`inference_iter.py` L245-256 written out literally, with the Python-index wrap of negative values.

    The official code hard-codes N_C = 4 (`np.linspace(0, n, 5)`); N_C generalises the 4.
    """
    b = np.linspace(0, num_frames, num_context_frames + 1, dtype=int)
    clips = [
        [min(b[j] + i, b[j + 1] - 1) for j in range(num_context_frames)]
        for i in range(math.ceil(num_frames / num_context_frames))
    ]
    frames = list(range(num_frames))
    return [frames[int(index)] for index in clips[len(clips) // 2]]


# The official evaluation sampler ("clips") for N_C = 4, worked out by hand from the formula.
CLIPS_N4 = {
    1: [0, 0, 0, 0],
    2: [1, 0, 0, 1],
    3: [2, 0, 1, 2],
    4: [0, 1, 2, 3],
    5: [0, 1, 2, 4],
    7: [0, 2, 4, 6],
    8: [1, 3, 5, 7],
    12: [1, 4, 7, 10],
    100: [12, 37, 62, 87],
}


@pytest.mark.parametrize(("num_frames", "expected"), sorted(CLIPS_N4.items()))
def test_clips_sampler_matches_hand_table(num_frames: int, expected: list[int]) -> None:
    assert context_frame_indices(num_frames) == expected
    assert context_frame_indices(num_frames, 4, "clips") == expected


@pytest.mark.parametrize(
    ("num_frames", "expected"),
    [(1, [0, 0, 0, 0]), (2, [0, 0, 0, 1]), (5, [0, 1, 2, 4]), (12, [0, 3, 7, 11]), (100, [0, 33, 66, 99])],
)
def test_linspace_sampler(num_frames: int, expected: list[int]) -> None:
    """The demo notebook's sampler: first and last frame included."""
    assert context_frame_indices(num_frames, 4, "linspace") == expected


@pytest.mark.parametrize("num_context_frames", [1, 2, 3, 4, 5, 8])
def test_clips_sampler_matches_official_formula(num_context_frames: int) -> None:
    for num_frames in [*range(1, 40), 99, 100, 101, 257, 1000]:
        indices = context_frame_indices(num_frames, num_context_frames)
        assert indices == official_clips(num_frames, num_context_frames), num_frames
        assert len(indices) == num_context_frames
        assert all(0 <= i < num_frames for i in indices)


@pytest.mark.parametrize(
    ("num_frames", "num_context_frames", "expected"),
    [
        (10, 1, [5]),
        (10, 2, [2, 7]),
        (3, 8, [2, 2, 0, 0, 0, 1, 1, 2]),
        (20, 5, [2, 6, 10, 14, 18]),
    ],
)
def test_clips_sampler_other_context_counts(
    num_frames: int, num_context_frames: int, expected: list[int]
) -> None:
    assert context_frame_indices(num_frames, num_context_frames) == expected


def test_linspace_other_context_counts() -> None:
    assert context_frame_indices(10, 1, "linspace") == [0]
    assert context_frame_indices(10, 2, "linspace") == [0, 9]
    assert context_frame_indices(3, 6, "linspace") == [0, 0, 0, 1, 1, 2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0,), "at least one frame"),
        ((-3,), "at least one frame"),
        ((10, 0), "at least 1"),
        ((10, -1), "at least 1"),
        ((10, 4, "uniform"), "unknown context sampler"),
        ((10, 4, "CLIPS"), "unknown context sampler"),
    ],
)
def test_context_sampler_errors(args: tuple, message: str) -> None:
    with pytest.raises(InputError, match=message):
        context_frame_indices(*args)


@pytest.mark.parametrize("keyframe", [None, 0])
def test_query_passes_without_key_frame(keyframe: int | None) -> None:
    assert query_passes(5, keyframe) == [QueryPass((0, 1, 2, 3, 4), "forward")]
    assert query_passes(1, keyframe) == [QueryPass((0,), "forward")]


def test_query_passes_with_key_frame() -> None:
    """Forward k..n-1, then backward k..0; both passes start at the key frame (position 0)."""
    assert query_passes(6, 2) == [
        QueryPass((2, 3, 4, 5), "forward"),
        QueryPass((2, 1, 0), "backward"),
    ]


def test_query_passes_with_last_frame_as_key_frame() -> None:
    assert query_passes(4, 3) == [QueryPass((3,), "forward"), QueryPass((3, 2, 1, 0), "backward")]


def test_query_passes_cover_every_frame() -> None:
    for num_frames in range(1, 12):
        for keyframe in range(num_frames):
            passes = query_passes(num_frames, keyframe)
            visited = [frame for p in passes for frame in p.frames]
            assert sorted(set(visited)) == list(range(num_frames))
            # Only the key frame is visited twice (once per pass).
            assert len(visited) == num_frames + (1 if keyframe > 0 else 0)
            assert all(p.frames[0] == keyframe for p in passes)


@pytest.mark.parametrize(("num_frames", "keyframe"), [(5, 5), (5, 6), (5, -1), (1, 1)])
def test_query_passes_key_frame_out_of_range(num_frames: int, keyframe: int) -> None:
    with pytest.raises(InputError, match="outside the video"):
        query_passes(num_frames, keyframe)


def test_query_passes_empty_video() -> None:
    with pytest.raises(InputError):
        query_passes(0)
