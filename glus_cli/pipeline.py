"""The per-video GLUS loop: context frames, query passes, LLM `[SEG]` answers, SAM2 masks, memory bank.

`segment_video` is the engine every command uses. It reads frames on demand from a `FrameSource` (a
video file, a frame folder, or an in-memory list), so a long video is never held in memory, and yields
one `FrameResult` per query frame and expression as soon as it is computed.

Three schedules (`SegmentationOptions.schedule`) run the same protocol with different orders of work:

- `reference`: the official `inference_iter.py`, step for step. Expressions run one after another; at
  every query frame CLIP encodes the N_C context frames and the window in one batch, the LLM reads the
  whole prompt, `lm_head` and `text_hidden_fcs` run over every position, and SAM2's image encoder runs on
  the frame. Frames are decoded and preprocessed just in time instead of all up front (no arithmetic
  changes). Kept for tests and the benchmark.
- `fast-exact`: all expressions of the video advance together, frame by frame, so the work that does not
  depend on the expression is done once per frame: decoding and preprocessing, CLIP (one frame per call,
  kept while a window can still show the frame), SAM2's image encoder. Per expression it then makes the
  same LLM and SAM2 calls as `reference`, on the same tensors: bit-identical results (the one assumption,
  that CLIP gives a frame the same features in a batch of one as in the official batch of N_C + window,
  was measured bit-exact on CPU in fp32 for the tiny and the ViT-L/14 tower; see benchmarks/README.md).
- `fast` (default): `fast-exact` plus LLM reuse that is exact in math but not bit for bit. The prompt
  prefix from BOS to the first query frame's `<im_start>` is the same in every prompt of a video (the
  context frames depend only on the frame count, the window and the expression come after it), so its
  key/value cache is computed once per video; the heads run on the last position only; and on a GPU the
  expressions visiting a frame go through the LLM together (`llm_batch_size`). SAM2's attention runs on
  faster kernels (`glus_cli.model.attention`), and on a CPU the LLaMA's eager attention a chunk of heads at
  a time (the same bits, `llm_attention_for`). Same `[SEG]` decisions; masks agree with `reference` per
  frame within `glus_cli.fidelity`'s bound: IoU >= 0.999 in fp32, >= 0.97 in bf16 (exact in math, not in
  floating point: the prefix and the rest of the prompt go through separate matrix products).

Every schedule knows in advance which frames it visits, in which order, so it hands that plan to
`glus_cli.frame_inputs`, which decodes and preprocesses the frames ahead on a background thread
(`SegmentationOptions.host_threads`) while the model works; the results are the same bits either way.

In every schedule frames are freed as soon as no window can show them, and the memory bank keeps only
entries its read formula can still reach, so memory does not grow with the video's length. With key
frames, the fast schedules walk the video twice (all forward passes, then all backward passes), so the
frames between the smallest and the largest key frame are encoded once per direction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from transformers import DynamicCache

from glus_cli.errors import InputError
from glus_cli.frame_inputs import FrameInputStream, FrameRequest, frame_inputs
from glus_cli.model.attention import AttentionKernels, attention_for_schedule
from glus_cli.model.glus import GlusModel
from glus_cli.model.memory_bank import MemoryBank
from glus_cli.model.mllm import LlmAttention, SegDecision, llm_attention_for
from glus_cli.model.prompt import build_prompt_ids, normalize_expression, query_window
from glus_cli.model.segmenter import FrameFeatures, upsample_logits
from glus_cli.model.tokenizer import IMAGE_TOKEN_INDEX
from glus_cli.protocol import (
    ArraySource,
    FrameResult,
    FrameSource,
    QueryPass,
    SegmentationOptions,
    context_frame_indices,
    llm_batch_size_for,
    query_passes,
)
from glus_cli.transfers import to_host

logger = logging.getLogger(__name__)


def segment_video(
    model: GlusModel,
    source: FrameSource,
    expressions: Sequence[str],
    options: SegmentationOptions | None = None,
    *,
    keyframes: Sequence[int | None] | None = None,
) -> Iterator[FrameResult]:
    """Segment the object each expression refers to, in every frame of `source`.

    All expressions of one call share the decoded frames and, in the fast schedules, the per-frame image
    features (CLIP and SAM2's image encoder) and the LLM's prompt-prefix cache: give every expression of
    a video in one call.

    Args:
        model: a loaded `GlusModel`.
        source: the video's frames.
        expressions: referring expressions (raw user text; normalised as the official evaluation does:
            one trailing '.' removed, lower-cased).
        options: protocol settings and schedule.
        keyframes: per expression, an optional key-frame index: forward pass k..n-1, then backward pass
            k..0 (the key frame is yielded by both passes; the backward pass's mask is the final one).

    Yields:
        `FrameResult`s as soon as they are computed. `reference`: expression by expression, each
        expression's passes in order, frames in visiting order. `fast` and `fast-exact`: interleaved,
        first a forward sweep over the frames (every expression's forward pass, frame by frame, in
        expression order within a frame), then, with key frames, a backward sweep the same way. With one
        expression both orders are the same, and in both a key frame's backward result comes after its
        forward one.
    """
    options = options or SegmentationOptions()
    normalized = [normalize_expression(text) for text in expressions]
    keyframes = list(keyframes) if keyframes is not None else [None] * len(expressions)
    if len(keyframes) != len(expressions):
        raise InputError("give one key frame (or none) per expression")
    num_frames = source.num_frames
    context = context_frame_indices(num_frames, options.num_context_frames, options.context_sampler)
    passes = [query_passes(num_frames, keyframe) for keyframe in keyframes]
    if options.schedule == "reference":
        yield from _reference_schedule(model, source, normalized, passes, context, options)
    else:
        yield from _fast_schedule(model, source, normalized, passes, context, options)


def segment(
    model: GlusModel,
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


def shared_prefix_length(input_ids: Sequence[int], num_context_frames: int) -> int:
    """Number of prompt ids before the first query frame's image placeholder.

    They run from BOS through the system text, `USER:`, the context block (its N_C images and the
    instruction) to the first query frame's `<im_start>`. Every prompt of a video starts with these ids
    and the same N_C context images, whatever the query position (the window slides and the context block
    moves into its first turn, but that turn always starts the same way) and whatever the expression (it
    follows the first query image). With the real LLaMA vocabulary and N_C = 4 this is 58 ids, 310
    positions once each image expands to 64 tokens.
    """
    image_slots = [i for i, token in enumerate(input_ids) if token == IMAGE_TOKEN_INDEX]
    if len(image_slots) <= num_context_frames:
        raise ValueError(f"the prompt has {len(image_slots)} images, expected more than {num_context_frames}")
    return image_slots[num_context_frames]


# --- shared by the schedules -------------------------------------------------------------------------


def _segment_frame(
    model: GlusModel,
    decision: SegDecision,
    frame_features: Callable[[], FrameFeatures],
    bank: MemoryBank,
    frame_size: tuple[int, int],
    expression_index: int,
    frame_index: int,
    position: int,
    direction: str,
    kernels: AttentionKernels,
) -> FrameResult:
    """SAM2's half of one query step: mask and memory write for a `[SEG]` answer, a blank mask otherwise.

    `frame_features` is called only for a `[SEG]` answer (the official code runs no SAM2 otherwise).
    `kernels`: SAM2's attention kernels, chosen by the schedule (`attention_for_schedule`).
    """
    if not decision.is_seg:
        logger.warning(
            "frame %d: the model answered token %d instead of [SEG]; writing a blank mask",
            frame_index,
            decision.token_id,
        )
        blank = np.zeros(frame_size, dtype=bool)
        return FrameResult(expression_index, frame_index, position, direction, blank, False, None, None)
    segmenter = model.segmenter
    features = frame_features()
    conditioned = segmenter.condition_on_memory(features, bank.read(position), kernels)
    decoded = segmenter.decode(features, conditioned, decision.embedding, kernels)
    mask = upsample_logits(decoded.low_res_logits, frame_size)[0, 0] > 0
    bank.write(position, segmenter.encode_memory(features, conditioned, decoded))
    bank.discard_unreadable(position + 1)
    # One wait for the GPU for the mask and both scores, after the memory encoder was launched.
    scores = torch.cat([decoded.iou.float().reshape(1), decoded.object_score.float().reshape(1)])
    host_mask, (iou, object_score) = to_host(mask, scores)
    return FrameResult(
        expression_index,
        frame_index,
        position,
        direction,
        host_mask,
        True,
        float(iou),
        float(object_score),
    )


# --- reference schedule ------------------------------------------------------------------------------


class _ReferenceFrames:
    """The preprocessed frames one expression's step shows: the context frames and the pass's window.

    Frames come from the schedule's `FrameInputStream` in visiting order. The context frames' CLIP inputs
    are kept for the expression; a query frame's CLIP input while the window can show it, its SAM2 input
    while it is visited. The official script preprocesses every frame of the video up front, once per
    expression; doing it just in time changes no arithmetic and bounds memory for long videos.
    """

    def __init__(self, inputs: FrameInputStream, context: Sequence[int], num_query_frames: int) -> None:
        self._inputs = inputs
        self._num_query_frames = num_query_frames
        self._context = {index: inputs.take(index).clip_pixels for index in dict.fromkeys(context)}
        self._window: dict[int, torch.Tensor] = {}
        self._sam: torch.Tensor | None = None
        self.frame_size: tuple[int, int] | None = None

    def start_pass(self) -> None:
        """Forget the previous pass's window."""
        self._window.clear()

    def visit(self, index: int) -> None:
        """Take the inputs of query frame `index`, the pass's next frame."""
        inputs = self._inputs.take(index)
        self.frame_size = inputs.size
        self._window[index] = self._context[index] if inputs.clip_pixels is None else inputs.clip_pixels
        while len(self._window) > self._num_query_frames:
            del self._window[next(iter(self._window))]  # the oldest: no later window shows it
        self._sam = inputs.sam_pixels

    def clip(self, index: int) -> torch.Tensor:
        """(1, 3, 224, 224) CLIP input of a context frame or of a frame of the current window."""
        return self._context[index] if index in self._context else self._window[index]

    def sam(self) -> torch.Tensor:
        """(1, 3, 1024, 1024) SAM2 input of the frame being visited."""
        return self._sam


def _reference_requests(passes: Sequence[Sequence[QueryPass]], context: Sequence[int]) -> list[FrameRequest]:
    """The frames the reference schedule takes, in order: per expression, its context, then its passes."""
    requests = []
    for expression_passes in passes:
        requests += [FrameRequest(index, sam=False) for index in dict.fromkeys(context)]
        for query_pass in expression_passes:
            requests += [FrameRequest(index, clip=index not in context) for index in query_pass.frames]
    return requests


def _reference_schedule(
    model: GlusModel,
    source: FrameSource,
    expressions: Sequence[str],
    passes: Sequence[Sequence[QueryPass]],
    context: list[int],
    options: SegmentationOptions,
) -> Iterator[FrameResult]:
    """Expressions one after another, each pass with a fresh memory bank, as the official script runs."""
    requests = _reference_requests(passes, context)
    with frame_inputs(model, source, requests, threaded=options.host_threads) as inputs:
        for expression_index, (expression, expression_passes) in enumerate(
            zip(expressions, passes, strict=True)
        ):
            frames = _ReferenceFrames(inputs, context, options.num_query_frames)
            for query_pass in expression_passes:
                yield from _reference_pass(
                    model, frames, expression, expression_index, context, query_pass, options
                )


def _reference_pass(
    model: GlusModel,
    frames: _ReferenceFrames,
    expression: str,
    expression_index: int,
    context: list[int],
    query_pass: QueryPass,
    options: SegmentationOptions,
) -> Iterator[FrameResult]:
    """One query pass in the official order of work."""
    bank = MemoryBank(options.num_maskmem, options.mem_stride)
    frames.start_pass()
    for position, frame_index in enumerate(query_pass.frames):
        frames.visit(frame_index)
        window = [query_pass.frames[p] for p in query_window(position, options.num_query_frames)]
        input_ids = build_prompt_ids(
            model.tokenizer, expression, position, options.num_context_frames, options.num_query_frames
        )
        # Context frames first, then the window, oldest first: the order of `<image>` in the prompt.
        clip_inputs = torch.cat([frames.clip(i) for i in (*context, *window)])  # (N_C + n_q, 3, 224, 224)
        image_tokens = model.vision(clip_inputs)  # (N_C + n_q, 64, hidden)
        hidden = model.language(model.language.embed_prompt(input_ids, image_tokens))
        decision = model.language.decide(hidden, full_sequence=True)
        yield _segment_frame(
            model,
            decision,
            lambda: model.segmenter.encode_frame(frames.sam()),
            bank,
            frames.frame_size,
            expression_index,
            frame_index,
            position,
            query_pass.direction,
            attention_for_schedule(options.schedule),
        )


# --- fast schedules ----------------------------------------------------------------------------------


class _SharedFrameWork:
    """The per-frame work every expression of a video shares, done once per frame and sweep.

    Frames come from the schedule's `FrameInputStream`: the context frames, then each visited frame.

    - Image tokens (CLIP -> pooling -> projector, (64, hidden)) of one frame per call: the context
      frames' for the whole video, a query frame's while some window can still show it (`retain`).
    - SAM2 image-encoder features of the frame being visited only (`finish_frame`).
    """

    def __init__(self, model: GlusModel, inputs: FrameInputStream, context: Sequence[int]) -> None:
        self._model = model
        self._inputs = inputs
        self._context = frozenset(context)
        self._tokens: dict[int, torch.Tensor] = {}
        self._sam_pixels: tuple[int, torch.Tensor] | None = None
        self._features: tuple[int, FrameFeatures] | None = None
        self.frame_size: tuple[int, int] | None = None
        for index in dict.fromkeys(context):
            self._encode_tokens(index, inputs.take(index).clip_pixels)
        self.context_tokens = torch.stack([self._tokens[i] for i in context])  # (N_C, 64, hidden)

    def _encode_tokens(self, index: int, clip_pixels: torch.Tensor) -> None:
        # One frame per CLIP call, so a frame's tokens do not depend on which frames share its batch.
        self._tokens[index] = self._model.vision(clip_pixels)[0]

    def visit(self, index: int) -> None:
        """Take the inputs of frame `index`, the next frame of the sweep, and compute its image tokens."""
        inputs = self._inputs.take(index)
        self.frame_size = inputs.size
        if inputs.clip_pixels is not None:
            self._encode_tokens(index, inputs.clip_pixels)
        self._sam_pixels = (index, inputs.sam_pixels)

    def image_tokens(self, index: int) -> torch.Tensor:
        """(64, hidden) image tokens of a context frame or of a visited frame still retained."""
        return self._tokens[index]

    def frame_features(self, index: int) -> FrameFeatures:
        """SAM2 image-encoder features of the visited frame `index`, computed once for every expression."""
        if self._features is None or self._features[0] != index:
            self._features = None  # free the previous frame's features before encoding
            visited, pixels = self._sam_pixels
            if visited != index:
                raise RuntimeError(f"SAM2 features of frame {index} asked for while visiting frame {visited}")
            self._features = (index, self._model.segmenter.encode_frame(pixels))
        return self._features[1]

    def retain(self, frames: set[int]) -> None:
        """Drop the image tokens of every frame outside `frames` and the context frames."""
        for index in [i for i in self._tokens if i not in frames and i not in self._context]:
            del self._tokens[index]

    def finish_frame(self) -> None:
        """Drop the visited frame's SAM2 input and features."""
        self._sam_pixels = None
        self._features = None

    def num_cached_tokens(self) -> int:
        """Frames whose image tokens are held (for tests of the memory bound)."""
        return len(self._tokens)


@dataclass
class _Track:
    """One expression's query pass in a fast schedule, with its own memory bank.

    Attributes:
        expression_index: index of the expression in the caller's list.
        expression: the normalised expression.
        query_pass: the frames it visits, in order.
        bank: its memory bank.
        next_position: query position of the next frame to visit.
    """

    expression_index: int
    expression: str
    query_pass: QueryPass
    bank: MemoryBank
    next_position: int = 0

    @property
    def done(self) -> bool:
        """Whether every frame of the pass was visited."""
        return self.next_position >= len(self.query_pass.frames)

    @property
    def next_frame(self) -> int | None:
        """Frame index of the next frame to visit (None when done)."""
        return None if self.done else self.query_pass.frames[self.next_position]

    def window(self, position: int, num_query_frames: int) -> list[int]:
        """Frame indices of the prompt window at `position`, oldest first."""
        return [self.query_pass.frames[p] for p in query_window(position, num_query_frames)]


@dataclass
class _Question:
    """One expression's prompt at one query frame: its ids and the window frames' image tokens."""

    input_ids: list[int]
    window_tokens: torch.Tensor  # (n_q, 64, hidden)


class _LanguageStep:
    """The LLM's `[SEG]` decisions for the expressions visiting one frame.

    With `reuse_prefix` the key/value cache of the prompt prefix shared by every prompt of the video
    (`shared_prefix_length`) is computed once, and the rest of the prompts go through the LLM in batches
    of up to `batch_size` right-padded sequences on top of it (padding comes after every real position,
    so causal attention keeps it out of the real rows); the heads run on each prompt's last position.
    Without it, each prompt is one full forward with the heads over every position, as in `reference`.

    Args:
        model: the loaded model.
        context_tokens: (N_C, 64, hidden) image tokens of the context frames.
        options: N_C and N_Q.
        reuse_prefix: reuse the prefix cache and batch (the `fast` schedule).
        batch_size: most prompts per LLM forward when `reuse_prefix`.
        attention: the LLaMA's attention implementation (`llm_attention_for` the schedule's kernels).
    """

    def __init__(
        self,
        model: GlusModel,
        context_tokens: torch.Tensor,
        options: SegmentationOptions,
        *,
        reuse_prefix: bool,
        batch_size: int,
        attention: LlmAttention,
    ) -> None:
        self.model = model
        self.context_tokens = context_tokens
        self.num_context_frames = options.num_context_frames
        self.num_query_frames = options.num_query_frames
        self.reuse_prefix = reuse_prefix
        self.batch_size = batch_size
        self.attention = attention
        self._prompt_ids: dict[tuple[str, int], list[int]] = {}
        self._prefix_caches: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def prompt_ids(self, expression: str, position: int) -> list[int]:
        """Prompt ids of `expression` at query position `position` (the same from N_Q - 1 on)."""
        key = (expression, min(position, self.num_query_frames - 1))
        if key not in self._prompt_ids:
            self._prompt_ids[key] = build_prompt_ids(
                self.model.tokenizer, expression, key[1], self.num_context_frames, self.num_query_frames
            )
        return self._prompt_ids[key]

    def decide(self, questions: Sequence[_Question]) -> list[SegDecision]:
        """One decision per question, in order."""
        language = self.model.language
        if not self.reuse_prefix:
            decisions = []
            for question in questions:
                image_tokens = torch.cat([self.context_tokens, question.window_tokens])
                hidden = language(
                    language.embed_prompt(question.input_ids, image_tokens), attention=self.attention
                )
                decisions.append(language.decide(hidden, full_sequence=True))
            return decisions
        by_prefix: dict[tuple[int, ...], list[int]] = {}
        for index, question in enumerate(questions):
            cut = shared_prefix_length(question.input_ids, self.num_context_frames)
            by_prefix.setdefault(tuple(question.input_ids[:cut]), []).append(index)
        decisions: list[SegDecision | None] = [None] * len(questions)
        for prefix, members in by_prefix.items():
            for start in range(0, len(members), self.batch_size):
                batch = members[start : start + self.batch_size]
                answers = self._decide_batch(prefix, [questions[i] for i in batch])
                for index, decision in zip(batch, answers, strict=True):
                    decisions[index] = decision
        return decisions  # type: ignore[return-value]

    def _prefix_cache(self, prefix: tuple[int, ...]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer (keys, values), each (1, kv_heads, P, head_dim): the prefix with the context images."""
        if prefix not in self._prefix_caches:
            language = self.model.language
            cache = DynamicCache()
            prompt = language.embed_prompt(list(prefix), self.context_tokens)
            language(prompt, past_key_values=cache, attention=self.attention)
            self._prefix_caches[prefix] = [(layer.keys, layer.values) for layer in cache.layers]
        return self._prefix_caches[prefix]

    def _decide_batch(self, prefix: tuple[int, ...], questions: Sequence[_Question]) -> list[SegDecision]:
        language = self.model.language
        cut = len(prefix)
        suffixes = [
            language.embed_prompt(q.input_ids[cut:], q.window_tokens)[0] for q in questions
        ]  # (L_i, hidden) each: the first query image onwards
        lengths = [suffix.shape[0] for suffix in suffixes]
        batch = pad_sequence(suffixes, batch_first=True)  # (B, max L_i, hidden), zeros after each L_i
        size = len(questions)
        cache = DynamicCache(
            ddp_cache_data=[
                (keys.expand(size, -1, -1, -1), values.expand(size, -1, -1, -1))
                for keys, values in self._prefix_cache(prefix)
            ]
        )
        hidden = language(batch, past_key_values=cache, attention=self.attention)  # (B, max L_i, hidden)
        # Each prompt's last real row, gathered by slicing: indices from the host, no copy to the GPU.
        last_rows = torch.cat(
            [hidden[row : row + 1, length - 1 : length] for row, length in enumerate(lengths)]
        )
        return language.decide_last_rows(last_rows)  # (B, 1, hidden) -> B decisions


def _fast_schedule(
    model: GlusModel,
    source: FrameSource,
    expressions: Sequence[str],
    passes: Sequence[Sequence[QueryPass]],
    context: list[int],
    options: SegmentationOptions,
) -> Iterator[FrameResult]:
    """Every expression's passes in lockstep, frame by frame: a forward sweep, then a backward one.

    At each frame of a sweep, the expressions whose pass visits it next take their step together: the
    frame's image tokens and SAM2 features are computed once, the LLM answers all of them (in batches of
    `llm_batch_size` in `fast`), then each runs SAM2's decoder and memory with its own bank. A forward
    pass visits frames in increasing order, a backward pass in decreasing order, so every pass's frames
    come in its own order.
    """
    tracks = [
        _Track(expression_index, expression, query_pass, MemoryBank(options.num_maskmem, options.mem_stride))
        for expression_index, (expression, expression_passes) in enumerate(
            zip(expressions, passes, strict=True)
        )
        for query_pass in expression_passes
    ]
    requests = _fast_requests(tracks, context)
    with frame_inputs(model, source, requests, threaded=options.host_threads) as inputs:
        yield from _fast_sweeps(model, inputs, tracks, context, options)


def _sweep_frames(tracks: Sequence[_Track], direction: str) -> list[int]:
    """The frames a sweep visits, in order: every frame of its passes, ascending forward, descending back."""
    passes = [track.query_pass for track in tracks if track.query_pass.direction == direction]
    return sorted(
        {frame for query_pass in passes for frame in query_pass.frames}, reverse=direction == "backward"
    )


def _fast_requests(tracks: Sequence[_Track], context: Sequence[int]) -> list[FrameRequest]:
    """The frames the fast schedules take, in order: the context frames, then each sweep's frames."""
    requests = [FrameRequest(index, sam=False) for index in dict.fromkeys(context)]
    for direction in ("forward", "backward"):
        requests += [FrameRequest(i, clip=i not in context) for i in _sweep_frames(tracks, direction)]
    return requests


def _fast_sweeps(
    model: GlusModel,
    inputs: FrameInputStream,
    tracks: Sequence[_Track],
    context: list[int],
    options: SegmentationOptions,
) -> Iterator[FrameResult]:
    """The forward sweep, then the backward one, over frames taken from `inputs`."""
    shared = _SharedFrameWork(model, inputs, context)
    batch_size = llm_batch_size_for(options.llm_batch_size, model.device.type)
    language = _LanguageStep(
        model,
        shared.context_tokens,
        options,
        reuse_prefix=options.schedule == "fast",
        batch_size=batch_size,
        attention=llm_attention_for(attention_for_schedule(options.schedule), model.device),
    )
    num_query_frames = options.num_query_frames
    for direction in ("forward", "backward"):
        sweep = [track for track in tracks if track.query_pass.direction == direction]
        for frame_index in _sweep_frames(sweep, direction):
            shared.visit(frame_index)
            active = [track for track in sweep if track.next_frame == frame_index]
            questions = [
                _Question(
                    language.prompt_ids(track.expression, track.next_position),
                    # (n_q, 64, hidden): the window's frames, oldest first.
                    torch.stack(
                        [shared.image_tokens(i) for i in track.window(track.next_position, num_query_frames)]
                    ),
                )
                for track in active
            ]
            for track, decision in zip(active, language.decide(questions), strict=True):
                yield _segment_frame(
                    model,
                    decision,
                    lambda index=frame_index: shared.frame_features(index),
                    track.bank,
                    shared.frame_size,
                    track.expression_index,
                    frame_index,
                    track.next_position,
                    direction,
                    attention_for_schedule(options.schedule),
                )
                track.next_position += 1
            shared.finish_frame()
            # Keep the frames that the next window of an unfinished pass shows.
            shared.retain(
                {
                    frame
                    for track in sweep
                    if not track.done
                    for frame in track.window(track.next_position, num_query_frames)
                }
            )
