"""The per-video GLUS loop: context frames, query passes, LLM `[SEG]` answers, SAM2 masks, memory bank.

`segment_video` is the engine every command uses. It reads frames on demand from a `FrameSource` (a
video file, a frame folder, or an in-memory list), so a long video is never held in memory, and yields
one `FrameResult` per query frame and expression as soon as it is computed.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch

from glus_cli.errors import InputError
from glus_cli.model.glus import GLUSModel
from glus_cli.model.memory_bank import MEM_STRIDE, NUM_MASKMEM, MemoryBank
from glus_cli.model.prompt import build_prompt_ids, normalize_expression, query_window
from glus_cli.model.segmenter import upsample_logits
from glus_cli.sampling import ContextSampler, QueryPass, context_frame_indices, query_passes

logger = logging.getLogger(__name__)

Schedule = Literal["reference", "fast"]


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
        schedule: `reference` follows the official order of work literally; `fast` reuses work that does
            not change between steps and expressions.
    """

    num_context_frames: int = 4
    num_query_frames: int = 4
    mem_stride: int = MEM_STRIDE
    num_maskmem: int = NUM_MASKMEM
    context_sampler: ContextSampler = "clips"
    schedule: Schedule = "reference"

    def __post_init__(self) -> None:
        for name in ("num_context_frames", "num_query_frames", "mem_stride", "num_maskmem"):
            if getattr(self, name) < 1:
                raise InputError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.schedule not in ("reference", "fast"):
            raise InputError(f"unknown schedule {self.schedule!r}; use reference or fast")


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


class _PreprocessedFrames:
    """Decoded + preprocessed frames, kept only while a window or the context can still use them.

    The official script preprocesses every frame of the video up front; caching preprocessing changes no
    arithmetic, and evicting frames older than the window bounds memory for long videos.
    """

    def __init__(self, model: GLUSModel, source: FrameSource, pinned: Sequence[int], capacity: int) -> None:
        self._model = model
        self._source = source
        self._pinned = set(pinned)
        self._capacity = capacity
        self._clip: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._sam: OrderedDict[int, torch.Tensor] = OrderedDict()
        self.frame_size: tuple[int, int] | None = None

    def _frame(self, index: int) -> np.ndarray:
        frame = self._source.read(index)
        size = (int(frame.shape[0]), int(frame.shape[1]))
        if self.frame_size is None:
            self.frame_size = size
        elif size != self.frame_size:
            raise InputError(
                f"frame {index} is {size[1]}×{size[0]}, but earlier frames are "
                f"{self.frame_size[1]}×{self.frame_size[0]}"
            )
        return frame

    def _cached(self, cache: OrderedDict[int, torch.Tensor], index: int, make: Callable) -> torch.Tensor:
        if index in cache:
            cache.move_to_end(index)
            return cache[index]
        value = make(self._frame(index))
        cache[index] = value
        evictable = [i for i in cache if i not in self._pinned]
        while len(cache) > self._capacity + len(self._pinned) and evictable:
            del cache[evictable.pop(0)]
        return value

    def clip(self, index: int) -> torch.Tensor:
        """(1, 3, 224, 224) CLIP input of frame `index`."""
        return self._cached(self._clip, index, self._model.clip_preprocess)

    def sam(self, index: int) -> torch.Tensor:
        """(1, 3, 1024, 1024) SAM2 input of frame `index`."""
        return self._cached(self._sam, index, self._model.segmenter.preprocess)


def segment_video(
    model: GLUSModel,
    source: FrameSource,
    expressions: Sequence[str],
    options: SegmentationOptions | None = None,
    *,
    keyframes: Sequence[int | None] | None = None,
) -> Iterator[FrameResult]:
    """Segment the object each expression refers to, in every frame of `source`.

    Args:
        model: a loaded `GLUSModel`.
        source: the video's frames.
        expressions: referring expressions (raw user text; normalised as the official evaluation does:
            one trailing '.' removed, lower-cased).
        options: protocol settings.
        keyframes: per expression, an optional key-frame index: forward pass k..n-1, then backward pass
            k..0 (the key frame is yielded by both passes; the backward pass's mask is the final one).

    Yields:
        `FrameResult`s, expression by expression, in visiting order.
    """
    options = options or SegmentationOptions()
    normalized = [normalize_expression(text) for text in expressions]
    keyframes = list(keyframes) if keyframes is not None else [None] * len(expressions)
    if len(keyframes) != len(expressions):
        raise InputError("give one key frame (or none) per expression")
    num_frames = source.num_frames
    context = context_frame_indices(num_frames, options.num_context_frames, options.context_sampler)
    frames = _PreprocessedFrames(model, source, pinned=context, capacity=options.num_query_frames + 1)
    for expression_index, (expression, keyframe) in enumerate(zip(normalized, keyframes, strict=True)):
        for query_pass in query_passes(num_frames, keyframe):
            yield from _run_pass(model, frames, expression, expression_index, context, query_pass, options)


def _run_pass(
    model: GLUSModel,
    frames: _PreprocessedFrames,
    expression: str,
    expression_index: int,
    context: list[int],
    query_pass: QueryPass,
    options: SegmentationOptions,
) -> Iterator[FrameResult]:
    """One query pass with a fresh memory bank, in the official order of work."""
    bank = MemoryBank(options.num_maskmem, options.mem_stride)
    full_sequence = options.schedule == "reference"
    for position, frame_index in enumerate(query_pass.frames):
        window = [query_pass.frames[p] for p in query_window(position, options.num_query_frames)]
        input_ids = build_prompt_ids(
            model.tokenizer, expression, position, options.num_context_frames, options.num_query_frames
        )
        # Context frames first, then the window, oldest first: the order of `<image>` in the prompt.
        clip_inputs = torch.cat([frames.clip(i) for i in (*context, *window)])
        image_tokens = model.vision(clip_inputs)
        hidden = model.language(model.language.embed_prompt(input_ids, image_tokens))
        decision = model.language.decide(hidden, full_sequence=full_sequence)
        sam_input = frames.sam(frame_index)
        height, width = frames.frame_size
        if not decision.is_seg:
            logger.warning(
                "frame %d: the model answered token %d instead of [SEG]; writing a blank mask",
                frame_index,
                decision.token_id,
            )
            yield FrameResult(
                expression_index,
                frame_index,
                position,
                query_pass.direction,
                np.zeros((height, width), dtype=bool),
                False,
                None,
                None,
            )
            continue
        segmenter = model.segmenter
        features = segmenter.encode_frame(sam_input)
        conditioned = segmenter.condition_on_memory(features, bank.read(position))
        decoded = segmenter.decode(features, conditioned, decision.embedding)
        mask = upsample_logits(decoded.low_res_logits, (height, width))[0, 0] > 0
        bank.write(position, segmenter.encode_memory(features, conditioned, decoded))
        bank.discard_unreadable(position + 1)
        yield FrameResult(
            expression_index,
            frame_index,
            position,
            query_pass.direction,
            mask.cpu().numpy(),
            True,
            float(decoded.iou.float()[0, 0]),
            float(decoded.object_score.float()[0, 0]),
        )


def segment(
    model: GLUSModel,
    frames: Sequence[np.ndarray] | FrameSource,
    expression: str,
    options: SegmentationOptions | None = None,
    *,
    keyframe: int | None = None,
) -> list[np.ndarray]:
    """Per-frame bool masks (H, W) of the object `expression` refers to, in frame order."""
    source = ArraySource(frames) if isinstance(frames, Sequence) else frames
    masks: list[np.ndarray | None] = [None] * source.num_frames
    for result in segment_video(model, source, [expression], options, keyframes=[keyframe]):
        masks[result.frame_index] = result.mask
    return masks  # type: ignore[return-value]
