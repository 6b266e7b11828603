"""What the benchmarks share: synthetic checkpoints and videos, the per-stage timer, result comparison.

`bench_inference.py` (CPU figures) and `gpu_check.py` (the one-GPU check) both time glus-cli's schedules
with these helpers, so a stage means the same thing in both.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from glus_cli.model.glus import GlusModel, load_glus
from glus_cli.pipeline import segment_video
from glus_cli.protocol import FrameResult, SegmentationOptions
from glus_cli.testing.checkpoint import build_checkpoint
from glus_cli.testing.videos import synthetic_frame

logger = logging.getLogger("stage_timing")

SCHEDULES = ("reference", "fast-exact", "fast")
STAGES = ("preprocess", "clip", "llm", "sam2_encoder", "decoder_memory", "other")
STAGE_LABELS = {
    "preprocess": "preprocessing",
    "clip": "CLIP + projector",
    "llm": "LLM + heads",
    "sam2_encoder": "SAM2 image encoder",
    "decoder_memory": "SAM2 decoder + memory",
    "other": "other",
}
EXPRESSIONS = ("the red ball", "the green square on the right.", "the background", "a moving object")


class SyntheticSource:
    """A `FrameSource` that draws frame i when it is read (nothing is held, like a streaming decoder)."""

    def __init__(self, num_frames: int, size: tuple[int, int]) -> None:
        self._num_frames = num_frames
        self._size = size

    @property
    def num_frames(self) -> int:
        """Number of frames."""
        return self._num_frames

    def read(self, index: int) -> np.ndarray:
        """Frame `index`, RGB uint8 (H, W, 3)."""
        return synthetic_frame(index, self._size)


@dataclass
class RunRecord:
    """One timed `segment_video` run."""

    schedule: str
    num_expressions: int
    num_frames: int
    seconds: float
    cpu_seconds: float
    stages: dict[str, float]
    load_before: float
    load_after: float
    results: list[FrameResult] = field(repr=False)
    tokens: list[int] = field(repr=False)

    @property
    def seconds_per_frame(self) -> float:
        """End-to-end seconds per frame of the video (all expressions)."""
        return self.seconds / self.num_frames


@contextmanager
def stage_timer(
    model: GlusModel,
    stages: dict[str, float],
    tokens: list[int],
    synchronize: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Time the model's stages into `stages` and record every LLM decision's token in `tokens`.

    Wraps the model's methods on the instances (none of them calls another wrapped one), and restores them.
    On a GPU give `synchronize` (`torch.cuda.synchronize`): it runs before each stage starts and ends, so
    a stage's time is its GPU time, not the time to launch its kernels. Time a run with
    `host_threads=False`, or the preprocessing on the prefetch thread overlaps the other stages.
    """
    segmenter, language = model.segmenter, model.language
    targets: list[tuple[object, str, str]] = [
        (model, "clip_preprocess", "preprocess"),
        (segmenter, "preprocess", "preprocess"),
        (model.vision, "forward", "clip"),
        (language, "forward", "llm"),
        (language, "embed_prompt", "llm"),
        (language, "decide", "llm"),
        (language, "decide_last_rows", "llm"),
        (segmenter, "encode_frame", "sam2_encoder"),
        (segmenter, "condition_on_memory", "decoder_memory"),
        (segmenter, "decode", "decoder_memory"),
        (segmenter, "encode_memory", "decoder_memory"),
    ]
    sync = synchronize or (lambda: None)

    def timed(method: Callable, stage: str, record_tokens: bool) -> Callable:
        def wrapper(*args: object, **kwargs: object) -> object:
            sync()
            start = time.perf_counter()
            result = method(*args, **kwargs)
            sync()
            stages[stage] = stages.get(stage, 0.0) + time.perf_counter() - start
            if record_tokens:
                decisions = result if isinstance(result, list) else [result]
                tokens.extend(decision.token_id for decision in decisions)
            return result

        return wrapper

    for obj, name, stage in targets:
        setattr(obj, name, timed(getattr(obj, name), stage, record_tokens=name.startswith("decide")))
    try:
        yield
    finally:
        for obj, name, _ in targets:
            delattr(obj, name)  # the instance attribute hid the class's method


def timed_run(
    model: GlusModel,
    source: SyntheticSource,
    expressions: Sequence[str],
    schedule: str,
    *,
    llm_batch_size: int | None = None,
    synchronize: Callable[[], None] | None = None,
) -> RunRecord:
    """Run `segment_video` once, serially (`host_threads=False`), and time it stage by stage."""
    stages: dict[str, float] = {}
    tokens: list[int] = []
    options = SegmentationOptions(schedule=schedule, llm_batch_size=llm_batch_size, host_threads=False)
    load_before = os.getloadavg()[0]
    cpu_start = time.process_time()
    start = time.perf_counter()
    with stage_timer(model, stages, tokens, synchronize):
        results = list(segment_video(model, source, expressions, options))
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    stages["other"] = seconds - sum(stages.values())
    logger.info("%s, %d expression(s): %.1f s", schedule, len(expressions), seconds)
    return RunRecord(
        schedule,
        len(expressions),
        source.num_frames,
        seconds,
        cpu_seconds,
        stages,
        load_before,
        os.getloadavg()[0],
        results,
        tokens,
    )


def compare(reference: RunRecord, other: RunRecord) -> dict[str, float | bool]:
    """How `other`'s results agree with `reference`'s: tokens, bit-equal masks, worst per-frame IoU."""

    def keyed(results: list[FrameResult]) -> dict[tuple, FrameResult]:
        return {(r.expression_index, r.direction, r.frame_index): r for r in results}

    ours, theirs = keyed(reference.results), keyed(other.results)
    assert ours.keys() == theirs.keys()
    ious = []
    for key, result in ours.items():
        a, b = result.mask, theirs[key].mask
        union = np.logical_or(a, b).sum()
        ious.append(1.0 if union == 0 else float(np.logical_and(a, b).sum() / union))
    return {
        "same_tokens": sorted(reference.tokens) == sorted(other.tokens)
        and all(r.is_seg == theirs[k].is_seg for k, r in ours.items()),
        "identical_masks": all(np.array_equal(r.mask, theirs[k].mask) for k, r in ours.items()),
        "identical_scores": all(
            (r.iou, r.object_score) == (theirs[k].iou, theirs[k].object_score) for k, r in ours.items()
        ),
        "min_iou": min(ious),
        "seg_answers": sum(r.is_seg for r in other.results),
        "results": len(other.results),
    }


# --- checkpoints -----------------------------------------------------------------------------------


def checkpoint_folder(shape: str, work_dir: Path) -> Path:
    """The synthetic checkpoint of `shape` under `work_dir`, built on first use."""
    root = work_dir / f"checkpoint-{shape}"
    if not (root / "glus" / "config.json").is_file():
        logger.info("building the %s checkpoint in %s", shape, root)
        build_checkpoint(root, shape=shape)
    return root / "glus"


def load_model(shape: str, work_dir: Path, device: str = "cpu", dtype: str | None = None) -> GlusModel:
    """Load the checkpoint (default: on the CPU in fp32; the synthetic LLM answers `[SEG]` at every width)."""
    return load_glus(checkpoint_folder(shape, work_dir), device=device, dtype=dtype)


def warm_up(model: GlusModel, num_images: int) -> None:
    """Run each stage once at the shapes the runs use, so no run pays first-call set-up costs."""
    with torch.inference_mode():
        for batch in range(1, num_images + 1):
            model.vision(torch.zeros(batch, 3, 224, 224))
        segmenter = model.segmenter
        features = segmenter.encode_frame(torch.zeros(1, 3, segmenter.image_size, segmenter.image_size))
        segmenter.condition_on_memory(features, None)
