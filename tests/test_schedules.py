"""The fast schedules against the official order of work (`reference`) on the tiny synthetic checkpoint.

`fast-exact` must be bit-identical to `reference`: same masks, same SAM2 scores, same LLM tokens. `fast`
reuses the LLM's prompt-prefix cache, batches expressions and runs the heads on the last position, which
is exact in math only: it must give the same tokens and per-frame mask IoU >= 0.999 (spec §7b). Each
scenario's three runs are computed once per module; a tiny query frame costs about 0.3 s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from glus_cli.errors import InputError
from glus_cli.fidelity import fidelity_bound
from glus_cli.model.glus import GlusModel
from glus_cli.model.mllm import SegDecision
from glus_cli.model.prompt import build_prompt_ids
from glus_cli.model.tokenizer import GlusTokenizer
from glus_cli.pipeline import segment, segment_video, shared_prefix_length
from glus_cli.protocol import ArraySource, FrameResult, SegmentationOptions
from tests.fixtures import EXPRESSION, OTHER_EXPRESSION, synthetic_video

pytest_plugins = ["tests.fixtures"]

FP32 = fidelity_bound("float32")
"""The contract `fast` keeps in float32, the dtype of these tests (`tests.fixtures.ModelFactory`)."""
IMAGE_TOKENS = 64
"""Positions one image takes in the LLM's input (64 pooled CLIP tokens replace one placeholder id)."""


@dataclass(frozen=True)
class Scenario:
    """A video, its expressions and key frames, and the protocol options, run under every schedule."""

    name: str
    num_frames: int
    expressions: tuple[str, ...]
    keyframes: tuple[int | None, ...]
    context_sampler: str = "clips"


SCENARIOS = (
    # Two expressions of different lengths (so `fast` pads its LLM batch); the second has key frame 2: a
    # forward pass 2..5 beside the first expression's 0..5, then a backward pass 2..0. Six frames fill
    # the four-frame window and reach memory-bank reads on the stride grid.
    Scenario("key-frame", 6, (EXPRESSION, OTHER_EXPRESSION), (None, 2)),
    Scenario("linspace", 4, (OTHER_EXPRESSION, "A dog."), (None, None), context_sampler="linspace"),
)


VARIANTS = {
    "reference": {"schedule": "reference"},
    "fast-exact": {"schedule": "fast-exact"},
    "fast": {"schedule": "fast"},  # on the CPU: one expression per LLM forward
    "fast-batched": {"schedule": "fast", "llm_batch_size": 2},
}
"""The runs compared in every scenario: schedule options by name."""


@dataclass
class Run:
    """One run's results, the LLM's token answers by (expression, direction, frame), and its LLM batches."""

    results: list[FrameResult]
    tokens: dict[tuple[int, str, int], int]
    llm_batch_sizes: list[int]

    def by_key(self) -> dict[tuple[int, str, int], FrameResult]:
        return {(r.expression_index, r.direction, r.frame_index): r for r in self.results}


def _run(model: GlusModel, scenario: Scenario, variant: str) -> Run:
    """Segment the scenario, recording each LLM decision's token and each LLM forward's batch size."""
    options = SegmentationOptions(context_sampler=scenario.context_sampler, **VARIANTS[variant])
    language = model.language
    decide, decide_last_rows, forward = language.decide, language.decide_last_rows, language.forward
    answers: list[SegDecision] = []
    batch_sizes: list[int] = []

    def recording_decide(*args: object, **kwargs: object) -> SegDecision:
        answers.append(decide(*args, **kwargs))
        return answers[-1]

    def recording_decide_last_rows(*args: object, **kwargs: object) -> list[SegDecision]:
        answers.extend(decide_last_rows(*args, **kwargs))  # `fast`: one call per LLM batch
        return answers[len(answers) - len(args[0]) :]

    def recording_forward(inputs_embeds: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        batch_sizes.append(inputs_embeds.shape[0])
        return forward(inputs_embeds, *args, **kwargs)

    language.decide, language.forward = recording_decide, recording_forward
    language.decide_last_rows = recording_decide_last_rows
    try:
        source = ArraySource(synthetic_video(scenario.num_frames))
        results = list(
            segment_video(model, source, scenario.expressions, options, keyframes=scenario.keyframes)
        )
    finally:
        del language.decide, language.forward, language.decide_last_rows
    # One decision per result, made just before it is yielded.
    assert len(answers) == len(results)
    tokens = {
        (r.expression_index, r.direction, r.frame_index): a.token_id
        for r, a in zip(results, answers, strict=True)
    }
    return Run(results, tokens, batch_sizes)


@pytest.fixture(scope="module", params=SCENARIOS, ids=lambda s: s.name)
def runs(request: pytest.FixtureRequest, tiny_model: GlusModel) -> tuple[Scenario, dict[str, Run]]:
    scenario = request.param
    return scenario, {variant: _run(tiny_model, scenario, variant) for variant in VARIANTS}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def test_fast_exact_is_bit_identical_to_reference(runs: tuple[Scenario, dict[str, Run]]) -> None:
    _, by_schedule = runs
    reference, fast_exact = by_schedule["reference"], by_schedule["fast-exact"]
    assert fast_exact.tokens == reference.tokens
    expected = reference.by_key()
    assert fast_exact.by_key().keys() == expected.keys()
    for key, result in fast_exact.by_key().items():
        want = expected[key]
        assert result.position == want.position and result.is_seg == want.is_seg
        assert np.array_equal(result.mask, want.mask), key
        assert (result.iou, result.object_score) == (want.iou, want.object_score), key


@pytest.mark.parametrize("variant", ["fast", "fast-batched"])
def test_fast_gives_the_same_tokens_and_masks_to_iou_0999(
    runs: tuple[Scenario, dict[str, Run]], variant: str
) -> None:
    _, by_schedule = runs
    reference, fast = by_schedule["reference"], by_schedule[variant]
    assert fast.tokens == reference.tokens
    expected = reference.by_key()
    assert fast.by_key().keys() == expected.keys()
    for key, result in fast.by_key().items():
        assert result.position == expected[key].position and result.is_seg == expected[key].is_seg
        assert _iou(result.mask, expected[key].mask) >= FP32.min_iou, key
        assert result.iou == pytest.approx(expected[key].iou, abs=1e-4)


def test_the_scenarios_exercise_real_masks(runs: tuple[Scenario, dict[str, Run]]) -> None:
    """Every frame answers [SEG] with a partial mask, and the expressions' masks differ (no vacuous match)."""
    _, by_schedule = runs
    results = by_schedule["reference"].results
    assert all(r.is_seg and 0.0 < r.mask.mean() < 1.0 for r in results)
    first = [r.mask for r in results if r.expression_index == 0 and r.direction == "forward"]
    second = [r.mask for r in results if r.expression_index == 1 and r.direction == "forward"]
    assert any(not np.array_equal(a, b) for a, b in zip(first[-len(second) :], second, strict=True))


def test_result_order(runs: tuple[Scenario, dict[str, Run]]) -> None:
    """reference: expression by expression; fast: frame by frame in a forward sweep, then a backward one."""
    scenario, by_schedule = runs
    frames = range(scenario.num_frames)
    expected_reference: list[tuple[int, str, int]] = []
    forward: list[tuple[int, str, int]] = []
    backward: list[tuple[int, str, int]] = []
    for index, keyframe in enumerate(scenario.keyframes):
        start = keyframe or 0
        expected_reference += [(index, "forward", f) for f in frames if f >= start]
        if keyframe:
            expected_reference += [(index, "backward", f) for f in reversed(range(keyframe + 1))]
    for frame in frames:
        forward += [(i, "forward", frame) for i, k in enumerate(scenario.keyframes) if frame >= (k or 0)]
    for frame in reversed(frames):
        backward += [(i, "backward", frame) for i, k in enumerate(scenario.keyframes) if k and frame <= k]

    def order(run: Run) -> list[tuple[int, str, int]]:
        return [(r.expression_index, r.direction, r.frame_index) for r in run.results]

    assert order(by_schedule["reference"]) == expected_reference
    for variant in ("fast-exact", "fast", "fast-batched"):
        assert order(by_schedule[variant]) == forward + backward, variant


def test_llm_batches(runs: tuple[Scenario, dict[str, Run]]) -> None:
    """reference and fast-exact: one full prompt per forward; fast: the shared prefix once, then the rest
    of each prompt, one per forward on the CPU, or both expressions together with llm_batch_size=2."""
    scenario, by_schedule = runs
    steps = len(by_schedule["reference"].results)
    assert by_schedule["reference"].llm_batch_sizes == [1] * steps
    assert by_schedule["fast-exact"].llm_batch_sizes == [1] * steps
    assert by_schedule["fast"].llm_batch_sizes == [1] * (1 + steps)
    batched = by_schedule["fast-batched"].llm_batch_sizes
    assert batched[0] == 1 and sum(batched[1:]) == steps
    frames_with_both = scenario.num_frames - (scenario.keyframes[1] or 0)
    assert batched.count(2) == frames_with_both


def test_no_seg_answers_skip_sam2_in_every_schedule(
    never_model: GlusModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[int] = []
    monkeypatch.setattr(never_model.segmenter, "encode_frame", lambda pixels: encoded.append(1))
    frames = synthetic_video(3)
    masks = {
        schedule: segment(never_model, frames, EXPRESSION, SegmentationOptions(schedule=schedule), keyframe=1)
        for schedule in ("reference", "fast-exact", "fast")
    }
    assert not encoded
    for schedule_masks in masks.values():
        assert len(schedule_masks) == 3 and not any(mask.any() for mask in schedule_masks)


# --- the shared prompt prefix ------------------------------------------------------------------------


def test_shared_prefix_is_the_same_for_every_step_and_expression(tiny_model: GlusModel) -> None:
    tokenizer = tiny_model.tokenizer
    prefixes = set()
    for expression in (EXPRESSION, OTHER_EXPRESSION, "a"):
        for step in range(6):
            ids = build_prompt_ids(tokenizer, expression, step)
            cut = shared_prefix_length(ids, 4)
            prefixes.add(tuple(ids[:cut]))
            # It ends with the first query frame's <im_start>, right before that frame's image.
            assert ids[cut - 1] == tokenizer.im_start_id and ids[cut] < 0
    assert len(prefixes) == 1


def test_shared_prefix_with_the_real_llama_vocabulary() -> None:
    """58 ids and 310 positions once the 4 context images are expanded (reference §3.4)."""
    folder = os.environ.get("GLUS_LLAMA_TOKENIZER")
    if not folder or not (Path(folder) / "tokenizer.model").is_file():
        pytest.skip("GLUS_LLAMA_TOKENIZER is not set (a folder with the real LLaMA tokenizer files)")
    tokenizer = GlusTokenizer.from_pretrained(folder)
    ids = build_prompt_ids(tokenizer, "the panda that has stayed in place with little movement", 5)
    cut = shared_prefix_length(ids, 4)
    assert cut == 58
    assert cut + 4 * (IMAGE_TOKENS - 1) == 310


# --- streaming and bounded memory ----------------------------------------------------------------------


class CountingSource:
    """Frames drawn on demand; counts reads and how many earlier frames are still referenced at each read."""

    def __init__(self, num_frames: int) -> None:
        self._frames = synthetic_video(num_frames)
        self.reads = 0
        self.most_alive = 0
        self._alive: list = []

    @property
    def num_frames(self) -> int:
        return len(self._frames)

    def read(self, index: int) -> np.ndarray:
        import weakref

        self.reads += 1
        self.most_alive = max(self.most_alive, sum(ref() is not None for ref in self._alive))
        frame = self._frames[index].copy()  # a fresh array per read, as a decoder returns
        self._alive.append(weakref.ref(frame))
        return frame


@pytest.fixture
def streaming_probe(monkeypatch: pytest.MonkeyPatch, tiny_model: GlusModel) -> Iterator[dict[str, int]]:
    """Counts CLIP and SAM2-encoder calls and the largest token cache and memory bank seen during a run."""
    from glus_cli import pipeline

    stats = {
        "clip_images": 0,
        "sam2_encodes": 0,
        "most_tokens": 0,
        "most_kept_tokens": 0,
        "most_bank_entries": 0,
    }
    vision, encode = tiny_model.vision.forward, tiny_model.segmenter.encode_frame

    def counting_vision(pixels):
        assert pixels.shape[0] == 1  # one frame per CLIP call in the fast schedules
        stats["clip_images"] += 1
        return vision(pixels)

    def counting_encode(pixels):
        stats["sam2_encodes"] += 1
        return encode(pixels)

    class ProbedFrameWork(pipeline._SharedFrameWork):
        def retain(self, frames: set[int]) -> None:
            stats["most_tokens"] = max(stats["most_tokens"], self.num_cached_tokens())
            super().retain(frames)
            stats["most_kept_tokens"] = max(stats["most_kept_tokens"], self.num_cached_tokens())

    class ProbedBank(pipeline.MemoryBank):
        def discard_unreadable(self, next_position: int) -> None:
            super().discard_unreadable(next_position)
            stats["most_bank_entries"] = max(stats["most_bank_entries"], len(self))

    monkeypatch.setattr(tiny_model.vision, "forward", counting_vision)
    monkeypatch.setattr(tiny_model.segmenter, "encode_frame", counting_encode)
    monkeypatch.setattr(pipeline, "_SharedFrameWork", ProbedFrameWork)
    monkeypatch.setattr(pipeline, "MemoryBank", ProbedBank)
    yield stats


def test_fast_streams_frames_and_bounds_memory(
    tiny_model: GlusModel, streaming_probe: dict[str, int]
) -> None:
    """Small protocol sizes (N_C 2, N_Q 2, 3 memories at stride 2) so that 9 frames exceed every bound."""
    options = SegmentationOptions(num_context_frames=2, num_query_frames=2, num_maskmem=3, mem_stride=2)
    source = CountingSource(9)
    results = list(segment_video(tiny_model, source, [EXPRESSION, OTHER_EXPRESSION], options))
    assert len(results) == 18 and all(r.is_seg for r in results)
    # Each frame is CLIP-encoded and SAM2-encoded once for both expressions.
    assert streaming_probe["clip_images"] == 9
    assert streaming_probe["sam2_encodes"] == 9
    # Read once for CLIP, and the 2 context frames again when visited; never more than one frame held.
    assert source.reads == 9 + 2
    assert source.most_alive <= 1
    # Image tokens: the 2 context frames and the 2-frame window, then only what the next window shows.
    assert streaming_probe["most_tokens"] <= 2 + 2
    assert streaming_probe["most_kept_tokens"] <= 2 + 1
    # The bank keeps only the entries its read formula can still reach: at most num_maskmem.
    assert 1 < streaming_probe["most_bank_entries"] <= 3


# --- options -----------------------------------------------------------------------------------------


def test_fast_is_the_default_schedule() -> None:
    assert SegmentationOptions().schedule == "fast"


@pytest.mark.parametrize("changes", [{"schedule": "quick"}, {"llm_batch_size": 0}])
def test_invalid_schedule_options(changes: dict) -> None:
    with pytest.raises(InputError):
        SegmentationOptions(**changes)
