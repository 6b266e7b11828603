"""The model's per-frame inputs, made ahead of use: decoded frames, CLIP's and SAM2's pixels on the device.

A schedule knows in advance which frames it will visit and in which order (the context frames, then
each query pass's frames), so it hands that plan to `frame_inputs` as `FrameRequest`s and takes one
`FrameInputs` per request, in order. With `threaded=True` a background thread reads and preprocesses
the next frames while the model works on the current one (see `glus_cli.background`); without, each is
made when taken. Either way the same functions run on the same frames, so the model's inputs, and its
results, are the same bits.

Only the preprocessed tensors travel: the decoded frame is dropped as soon as it is preprocessed, so no
more than one decoded frame is alive at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from glus_cli.background import prefetched
from glus_cli.errors import InputError
from glus_cli.transfers import to_device

if TYPE_CHECKING:
    from glus_cli.model.glus import GlusModel
    from glus_cli.protocol import FrameSource


@dataclass(frozen=True)
class FrameRequest:
    """One frame a schedule will take, and which of the model's inputs it needs.

    Attributes:
        index: frame index in the source.
        clip: make CLIP's input (a context frame visited again already has its image tokens).
        sam: make SAM2's input (query frames only: SAM2 never sees a context frame as such).
    """

    index: int
    clip: bool = True
    sam: bool = True


@dataclass
class FrameInputs:
    """One frame's inputs, on the model's device, in float32 (each module casts to its dtype).

    Attributes:
        index: frame index in the source.
        size: the frame's (H, W).
        clip_pixels: (1, 3, 224, 224) CLIP input, or None when not requested.
        sam_pixels: (1, 3, S, S) SAM2 input, or None when not requested.
    """

    index: int
    size: tuple[int, int]
    clip_pixels: torch.Tensor | None
    sam_pixels: torch.Tensor | None


class FrameInputMaker:
    """Reads and preprocesses requested frames, one after another, checking that their sizes agree.

    Args:
        model: the loaded model (its CLIP and SAM2 preprocessing, its device).
        source: the video's frames.
    """

    def __init__(self, model: GlusModel, source: FrameSource) -> None:
        self._model = model
        self._source = source
        self.frame_size: tuple[int, int] | None = None

    def __call__(self, request: FrameRequest) -> FrameInputs:
        """The inputs of `request`'s frame (requests must come in the schedule's order)."""
        frame = self._source.read(request.index)
        self.frame_size = check_frame_size(frame, request.index, self.frame_size)
        device = self._model.device
        # Uploads go through pinned memory without waiting on CUDA; they queue on the device's default
        # stream behind the kernels already launched, so the kernels launched after them see the data.
        clip = to_device(self._model.clip_preprocess(frame), device) if request.clip else None
        sam = to_device(self._model.segmenter.preprocess(frame), device) if request.sam else None
        return FrameInputs(request.index, self.frame_size, clip, sam)


@contextmanager
def frame_inputs(
    model: GlusModel, source: FrameSource, requests: Iterable[FrameRequest], *, threaded: bool
) -> Iterator[FrameInputStream]:
    """A `FrameInputStream` of `requests`' inputs, made ahead on a thread when `threaded`.

    The thread stops when the block is left (the schedule's generator closed, an error, Ctrl-C).
    """
    with prefetched(requests, FrameInputMaker(model, source), threaded=threaded) as made:
        yield FrameInputStream(made)


class FrameInputStream:
    """Hands out `FrameInputs` in the order they were requested."""

    def __init__(self, made: Iterator[FrameInputs]) -> None:
        self._made = made

    def take(self, index: int) -> FrameInputs:
        """The next frame's inputs, which must be frame `index`'s (a schedule that strays is a bug)."""
        inputs = next(self._made, None)
        if inputs is None or inputs.index != index:
            got = "nothing" if inputs is None else f"frame {inputs.index}"
            raise RuntimeError(f"frame inputs out of order: expected frame {index}, got {got}")
        return inputs


def check_frame_size(frame: np.ndarray, index: int, expected: tuple[int, int] | None) -> tuple[int, int]:
    """The frame's (H, W); InputError when it differs from the video's first frame (`expected`)."""
    size = (int(frame.shape[0]), int(frame.shape[1]))
    if expected is not None and size != expected:
        raise InputError(
            f"frame {index} is {size[1]}×{size[0]}, but earlier frames are {expected[1]}×{expected[0]}"
        )
    return size
