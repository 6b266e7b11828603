"""The GLUS inference protocol as data: its settings, which frames it looks at, and what it answers.

This module is the protocol's vocabulary, free of torch so that the command line, the dataset runners
and the Ray driver can plan work without loading a model:

- the official settings (N_C context frames, an N_Q query window, a memory bank of `NUM_MASKMEM` entries
  on a `MEM_STRIDE` grid) and the choice lists of the protocol's switches;
- which frames GLUS looks at: the *context frames*, a handful spread over the whole video that precede
  every prompt (global reasoning), and the *query passes*, every frame visited once, in order, with a
  stride-1 window of the last few (local reasoning); with a key frame k > 0 the video is walked twice,
  forward over k..n-1 and backward over k..0;
- `SegmentationOptions`, the knobs of one run, and `FrameResult`, the answer for one query frame;
- the LLM batch size a run uses on a device (`llm_batch_size_for`) and what a run feeds the model
  (`Workload`, for the memory check before loading);
- `FrameSource`, what the engine (`glus_cli.pipeline`) reads frames from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from glus_cli.errors import InputError
from glus_cli.plural import plural

NUM_CONTEXT_FRAMES = 4
"""N_C: context frames shown before every query (the official evaluation's setting)."""
NUM_QUERY_FRAMES = 4
"""N_Q: the sliding window of query frames in each prompt."""
NUM_MASKMEM = 7
"""Memory-bank size: how many earlier frames a query frame reads (t-1 plus 6 grid frames)."""
MEM_STRIDE = 3
"""Stride of the memory-bank grid at inference (training used 1); see
`glus_cli.model.memory_bank.memory_read_positions`."""

ContextSampler = Literal["clips", "linspace"]
CONTEXT_SAMPLERS: tuple[str, ...] = ("clips", "linspace")
"""`clips`: the official evaluation sampler (the default); `linspace`: the demo notebook's."""

Schedule = Literal["fast", "fast-exact", "reference"]
SCHEDULES: tuple[str, ...] = ("fast", "fast-exact", "reference")
"""Orders of work for the same protocol (see `glus_cli.pipeline`); the first is the default."""
DEFAULT_SCHEDULE: Schedule = "fast"

FuserGamma = Literal["checkpoint", "official-eval"]
FUSER_GAMMAS: tuple[str, ...] = ("checkpoint", "official-eval")
"""Where SAM2's memory-encoder layer scale comes from: the checkpoint (the model as trained, the default),
or SAM2's init value 1e-6, which the official evaluation script ended up with (see `load_glus`)."""


def context_frame_indices(
    num_frames: int, num_context_frames: int = NUM_CONTEXT_FRAMES, sampler: ContextSampler = "clips"
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
        raise InputError(f"key frame {keyframe} is outside the video's {plural(num_frames, 'frame')}")
    return [
        QueryPass(tuple(range(keyframe, num_frames)), "forward"),
        QueryPass(tuple(range(keyframe, -1, -1)), "backward"),
    ]


def num_query_steps(num_frames: int, keyframe: int | None) -> int:
    """Query frames `segment_video` visits for one expression (a key frame is visited twice)."""
    return sum(len(query_pass.frames) for query_pass in query_passes(num_frames, keyframe))


class FrameSource(Protocol):
    """Random access to RGB uint8 (H, W, 3) frames; `glus_cli.video.VideoSource` is one."""

    @property
    def num_frames(self) -> int:
        """Number of frames."""
        ...

    def read(self, index: int) -> np.ndarray:
        """Frame `index` as RGB uint8 (H, W, 3)."""
        ...


class ArraySource:
    """A `FrameSource` over frames already in memory (for the Python API and tests)."""

    def __init__(self, frames: Sequence[np.ndarray]) -> None:
        if len(frames) == 0:
            raise InputError("no frames to segment")
        self._frames = frames

    @property
    def num_frames(self) -> int:
        """Number of frames."""
        return len(self._frames)

    def read(self, index: int) -> np.ndarray:
        """Frame `index`."""
        return self._frames[index]


@dataclass(frozen=True)
class SegmentationOptions:
    """The GLUS inference protocol's knobs (defaults: the official evaluation settings).

    Attributes:
        num_context_frames: N_C context frames shown before every query (4).
        num_query_frames: N_Q, the sliding window of query frames in the prompt (4).
        mem_stride: memory-bank grid stride at inference (3).
        num_maskmem: memory-bank size (7: t-1 plus 6 grid frames).
        context_sampler: `clips` (official evaluation: middle frames of N_C uniform clips) or
            `linspace` (the demo notebook's evenly spaced frames, first and last included).
        schedule: the order of work (see the module docstring): `fast` (default; same `[SEG]` decisions
            as `reference`, masks within `glus_cli.fidelity`'s bound: IoU >= 0.999 in fp32, >= 0.97 in
            bf16), `fast-exact` (bit-identical to `reference` in fp32, slower
            than `fast`), or `reference` (the official order of work, slowest).
        llm_batch_size: `fast` only: at most this many expressions share one LLM forward; None picks 1
            on the CPU (batching gains nothing there) and `ACCELERATOR_LLM_BATCH_SIZE` on a GPU
            (`llm_batch_size_for`).
        host_threads: decode and preprocess the next frames, and write masks, on background threads
            while the model works (`glus_cli.background`); False does that work in the calling thread.
            Results are the same bits either way.
    """

    num_context_frames: int = NUM_CONTEXT_FRAMES
    num_query_frames: int = NUM_QUERY_FRAMES
    mem_stride: int = MEM_STRIDE
    num_maskmem: int = NUM_MASKMEM
    context_sampler: ContextSampler = "clips"
    schedule: Schedule = DEFAULT_SCHEDULE
    llm_batch_size: int | None = None
    host_threads: bool = True

    def __post_init__(self) -> None:
        for name in ("num_context_frames", "num_query_frames", "mem_stride", "num_maskmem", "llm_batch_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise InputError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.schedule not in SCHEDULES:
            raise InputError(f"unknown schedule {self.schedule!r}; use {', '.join(SCHEDULES)}")


ACCELERATOR_LLM_BATCH_SIZE = 4
"""Expressions per LLM forward in the `fast` schedule on a GPU, where one forward per prompt leaves it
underused (not measured here). On the CPU the default is 1: at LLaMA-7B in bf16 with 4 expressions, a batch
of 4 took the LLM from 15.9 to 13.9 s per frame but the frames from 3 on took as long (23.3 s), the peak RSS
rose by 2.4 GB, and the masks moved (per-frame IoU down to 0.958 against one prompt at a time), 6 frames of
540x960 on a 2-core AMX CPU (benchmarks/README.md, "Batching expressions on the CPU")."""


def llm_batch_size_for(requested: int | None, device_type: str) -> int:
    """Expressions per LLM forward: `requested`, else 1 on the CPU and `ACCELERATOR_LLM_BATCH_SIZE` on an
    accelerator (`device_type` is torch's: ``cpu``, ``cuda``, ``mps``)."""
    if requested is not None:
        return requested
    return 1 if device_type == "cpu" else ACCELERATOR_LLM_BATCH_SIZE


@dataclass(frozen=True)
class Workload:
    """What a run feeds the model, for its working set in the memory check before loading.

    Attributes:
        frame_size: (H, W) of the video's frames (default 1080p).
        llm_batch_size: expressions per LLM forward (None: `llm_batch_size_for` the device).
        num_context_frames: N_C.
        num_query_frames: N_Q.
    """

    frame_size: tuple[int, int] = (1080, 1920)
    llm_batch_size: int | None = None
    num_context_frames: int = NUM_CONTEXT_FRAMES
    num_query_frames: int = NUM_QUERY_FRAMES

    @classmethod
    def of_run(cls, options: SegmentationOptions, frame_size: tuple[int, int] | None = None) -> Workload:
        """The workload of a run with `options` (its real `llm_batch_size` and window) on frames of
        `frame_size` (None: the 1080p default, for batches of videos not yet opened)."""
        return cls(
            frame_size or cls.frame_size,
            options.llm_batch_size,
            options.num_context_frames,
            options.num_query_frames,
        )


@dataclass
class FrameResult:
    """One query frame's answer for one expression.

    Attributes:
        expression_index: index into the expressions given to `segment_video`.
        frame_index: index of the frame in the source.
        position: query position in its pass (prompt window and memory bank use it).
        direction: `forward` or `backward` (key-frame mode); a key frame appears in both passes.
        mask: bool (H, W) mask at the frame's size.
        is_seg: whether the LLM answered `[SEG]` (False: blank mask, nothing written to memory).
        iou: SAM2's predicted IoU of the mask (None when not `is_seg`).
        object_score: SAM2's object-score logit (None when not `is_seg`).
    """

    expression_index: int
    frame_index: int
    position: int
    direction: str
    mask: np.ndarray
    is_seg: bool
    iou: float | None
    object_score: float | None
