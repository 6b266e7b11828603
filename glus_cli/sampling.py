"""Which frames GLUS looks at: context frames (global reasoning) and query passes (local reasoning).

The context frames are a handful of frames spread over the whole video that precede every prompt. The
query frames are every frame of the video, visited once, in order, with a stride-1 window of the last
few. With a key frame k > 0 the video is walked twice: forward over k..n-1 and backward over k..0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from glus_cli.errors import InputError

# The official memory-bank settings at inference: how many earlier frames a query frame reads, and the
# stride of the grid they lie on (training used stride 1). See `model.memory_bank.memory_read_positions`.
NUM_MASKMEM = 7
MEM_STRIDE = 3

ContextSampler = Literal["clips", "linspace"]
CONTEXT_SAMPLERS: tuple[str, ...] = ("clips", "linspace")


def context_frame_indices(
    num_frames: int, num_context_frames: int = 4, sampler: ContextSampler = "clips"
) -> list[int]:
    """Indices of the context frames of a video with `num_frames` frames.

    `"clips"` is the official evaluation sampler (`inference_iter.py`): split the video into
    `num_context_frames` uniform clips with `b = linspace(0, n, N+1)` and take, in each clip j, the frame
    `min(b[j] + k, b[j+1] - 1)` with `k = ceil(n / N) // 2` (the middle of the clip). The official code
    uses the result as a Python index, so a -1 (clips that are empty in videos shorter than N frames)
    means the last frame; the indices returned here are already wrapped into `[0, n)`.

    `"linspace"` is the demo notebook's sampler: `linspace(0, n - 1, N)`, first and last frame included.

    Examples: n=12, N=4 gives [1, 4, 7, 10] ("clips") and [0, 3, 7, 11] ("linspace").
    """
    if num_frames < 1:
        raise InputError("a video needs at least one frame")
    if num_context_frames < 1:
        raise InputError(f"--context-frames must be at least 1, got {num_context_frames}")
    if sampler == "linspace":
        return [int(i) for i in np.linspace(0, num_frames - 1, num_context_frames, dtype=int)]
    if sampler != "clips":
        raise InputError(f"unknown context sampler {sampler!r}; choose one of {', '.join(CONTEXT_SAMPLERS)}")
    bounds = np.linspace(0, num_frames, num_context_frames + 1, dtype=int)
    offset = math.ceil(num_frames / num_context_frames) // 2
    return [int(min(bounds[j] + offset, bounds[j + 1] - 1)) % num_frames for j in range(num_context_frames)]


@dataclass(frozen=True)
class QueryPass:
    """One walk over query frames with a fresh memory bank.

    Attributes:
        frames: video frame indices in visiting order; position t in this list is the query position
            the prompt window and the memory-bank formula use.
        direction: `"forward"` or `"backward"`.
    """

    frames: tuple[int, ...]
    direction: Literal["forward", "backward"]


def query_passes(num_frames: int, keyframe: int | None = None) -> list[QueryPass]:
    """The query passes over a video.

    Without a key frame (or with key frame 0): one forward pass over every frame. With key frame
    k > 0: a forward pass over k..n-1, then a backward pass over k, k-1, ..., 0; query positions restart
    at 0 in each pass, so the key frame is position 0 of both and its mask is the same in both. The
    official script saves the forward pass's mask i under frame i's name instead of frame k+i (a bug);
    these passes carry the intended frame indices.
    """
    if num_frames < 1:
        raise InputError("a video needs at least one frame")
    if keyframe is None or keyframe == 0:
        return [QueryPass(tuple(range(num_frames)), "forward")]
    if not 0 <= keyframe < num_frames:
        raise InputError(f"key frame {keyframe} is outside the video's {num_frames} frames")
    return [
        QueryPass(tuple(range(keyframe, num_frames)), "forward"),
        QueryPass(tuple(range(keyframe, -1, -1)), "backward"),
    ]
