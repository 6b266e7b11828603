"""Benchmark of the precision plan and SAM2's attention kernels on this machine (issue #11).

Four parts, each printed as a table (and written as JSON with `--json`):

- `attention`: one memory-attention cross-attention at the steady state (4096 queries over 7 x 4096 memory
  tokens, width 256, one head, as SAM2's `RoPEAttention` calls SDPA) on the math kernel, CPU flash, CPU
  flash on fp32 copies and the math formula in query chunks, in fp32 and bf16: seconds, the largest
  difference to the math kernel and how many outputs differ from it (issue #14).
- `drift`: per checkpoint shape (tiny, GLUS-shaped), `fast-exact`, `fast` and `fast` with each attention
  kernel or an LLM batch of 2 against `reference` in bf16 (`--drift-dtype`): `[SEG]` decisions, min and
  mean per-frame mask IoU, bit-identity, and whether `glus_cli.fidelity`'s bound holds.
- `steady`: the GLUS-shaped checkpoint end to end at the steady state (7 memories read, full window of
  N_Q query frames): the old default (`fast`, fp32, math kernel) against the new default (`fast`, the
  precision plan's dtype, the fastest kernel), and any other `--steady-plans`. A run of 8 frames with
  `mem_stride` 1 reaches 7 memories at its last frame, which costs what every later frame of a long video
  costs at the official stride 3; that frame's seconds are the figure.
- `llm7b`: a LLaMA-7B-shaped decoder (hidden 4096, MLP 11008, 32 heads, `--llm-layers` of 32 layers) with
  random weights in bf16: prefill seconds at the real prompt lengths (716 positions for the reference
  schedule, the 406-position suffix on a 310-position cached prefix for `fast`), per layer and scaled to
  32 layers. Layers are built on the meta device and materialised one at a time (`to_empty`), so the peak
  is the weights once (about 13.5 GB at 32 layers), never twice.

    .venv/bin/python benchmarks/bench_precision.py --parts attention            # 2-4 minutes
    .venv/bin/python benchmarks/bench_precision.py --parts drift --drift-shapes tiny
    .venv/bin/python benchmarks/bench_precision.py --parts steady               # 10-20 minutes
    .venv/bin/python benchmarks/bench_precision.py --parts llm7b --llm-layers 32
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from glus_cli import fidelity, hardware
from glus_cli.model import attention
from glus_cli.model.glus import load_glus, precision_plan
from glus_cli.pipeline import segment_video
from glus_cli.protocol import SegmentationOptions

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import EXPRESSIONS, SyntheticSource, checkpoint_folder, machine

logger = logging.getLogger("bench_precision")

MEMORY_TOKENS = 4096  # 64 x 64 features per memory at SAM2's 1024-pixel input
NUM_MEMORIES = 7
SAM2_WIDTH = 256
STEADY_FRAMES = 8
"""With mem_stride 1, position 7 is the first to read 7 memories (and the window is full from 3 on)."""
PROMPT_POSITIONS = 716
PREFIX_POSITIONS = 310
"""The real LLaMA vocabulary's steady-state prompt: 716 positions, 310 of them the shared prefix."""


def seconds(call: Callable[[], object], repeats: int) -> float:
    """Best of `repeats` wall-clock seconds of `call()` (after one untimed call)."""
    call()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


# --- memory attention -------------------------------------------------------------------------------


KERNELS: dict[str, attention.AttentionKernels | None] = {
    "math": "official",
    "flash": None,
    "fused": "fused",
    "math-chunks": "math-chunks",
}
"""The attention rows: the math kernel (official on the CPU), CPU flash in the inputs' dtype, CPU flash on
fp32 copies (`fused`, `fast`'s choice in bf16 before issue #14), the math formula in query chunks."""


def part_attention(repeats: int) -> dict:
    """Each attention kernel against the math kernel at 7 memories, in fp32 and bf16."""
    generator = torch.Generator().manual_seed(0)
    shape_q = (1, 1, MEMORY_TOKENS, SAM2_WIDTH)
    shape_kv = (1, 1, NUM_MEMORIES * MEMORY_TOKENS, SAM2_WIDTH)
    q, k, v = (torch.randn(s, generator=generator) for s in (shape_q, shape_kv, shape_kv))
    report = {}
    cpu = torch.device("cpu")
    for dtype in (torch.float32, torch.bfloat16):
        inputs = [t.to(dtype) for t in (q, k, v)]
        outputs = {}
        row: dict = {"load_average_before": os.getloadavg()[0]}
        for name, kernels in KERNELS.items():

            def call(
                kernels: attention.AttentionKernels | None = kernels,
                qkv: list = inputs,
                dt: torch.dtype = dtype,
            ) -> torch.Tensor:
                if kernels is None:  # CPU flash in the inputs' dtype
                    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
                        return F.scaled_dot_product_attention(*qkv)
                return attention.run_attention(lambda: F.scaled_dot_product_attention(*qkv), cpu, dt, kernels)

            with torch.inference_mode():
                row[f"{name}_seconds"] = seconds(call, repeats)
                outputs[name] = call()
            logger.info("attention %s %s: %.2f s", dtype, name, row[f"{name}_seconds"])
        for name in KERNELS:
            row[f"{name}_max_abs_difference"] = float(
                (outputs["math"].float() - outputs[name].float()).abs().max()
            )
            row[f"{name}_outputs_differing"] = int((outputs["math"] != outputs[name]).sum())
            row[f"{name}_speedup"] = row["math_seconds"] / row[f"{name}_seconds"]
        row["outputs"] = outputs["math"].numel()
        row["fast_runs"] = attention.resolve_kernels("fastest", cpu, dtype)
        row["load_average_after"] = os.getloadavg()[0]
        report[str(dtype).removeprefix("torch.")] = row
    return report


def print_attention(report: dict) -> None:
    print(
        f"\n## Memory attention at {NUM_MEMORIES} memories ({MEMORY_TOKENS} x "
        f"{NUM_MEMORIES * MEMORY_TOKENS}, width {SAM2_WIDTH}), s per call\n"
    )
    print(
        "| dtype | kernel | seconds | speed-up over math | max abs difference to math | outputs differing |"
    )
    print("|---|---|---:|---:|---:|---:|")
    labels = {
        "math": "math (official)",
        "flash": "CPU flash",
        "fused": "CPU flash on fp32 copies (fused)",
        "math-chunks": "math in query chunks",
    }
    for dtype in ("float32", "bfloat16"):
        row = report[dtype]
        for name, label in labels.items():
            label += " = fast's choice" if row["fast_runs"] == name else ""
            print(
                f"| {dtype} | {label} | {row[f'{name}_seconds']:.2f} | {row[f'{name}_speedup']:.1f}x | "
                f"{row[f'{name}_max_abs_difference']:.1e} | "
                f"{row[f'{name}_outputs_differing']} of {row['outputs']} |"
            )
        print(
            f"\n{dtype}: load average before/after "
            f"{row['load_average_before']:.1f}/{row['load_average_after']:.1f}"
        )


# --- drift of each kernel and of fast's other changes against reference ----------------------------


DRIFT_RUNS: dict[str, tuple[str, attention.AttentionKernels | None, int | None]] = {
    "fast-exact": ("fast-exact", None, None),
    "fast (default)": ("fast", None, None),
    "fast, math kernel": ("fast", "official", None),
    "fast, CPU flash on fp32 copies": ("fast", "fused", None),
    "fast, --llm-batch-size 2": ("fast", None, 2),
}
"""Each run compared with `reference`: (schedule, kernels forced instead of the schedule's, LLM batch)."""


def drift_run(
    model: torch.nn.Module,
    source: SyntheticSource,
    expressions: tuple[str, ...],
    schedule: str,
    kernels: attention.AttentionKernels | None,
    llm_batch_size: int | None,
) -> tuple[list, float]:
    """Every result of one run with `mem_stride` 1 (7 memories from the 8th frame), kernels as asked, and
    the seconds of its last frame (the steady state once 7 memories are read; with one expression: with
    several, the fast schedules interleave them and the figure sums overlapping spans)."""
    import glus_cli.pipeline as pipeline

    options = SegmentationOptions(schedule=schedule, mem_stride=1, llm_batch_size=llm_batch_size)
    chosen = pipeline.attention_for_schedule
    if kernels is not None:
        pipeline.attention_for_schedule = lambda schedule: kernels
    last = source.num_frames - 1
    results, started = [], {}
    try:
        for result in segment_video(model, source, expressions, options):
            results.append(result)
            if result.frame_index == last - 1:  # the frame before the last is done: the last one starts
                started.setdefault(result.expression_index, time.perf_counter())
            elif result.frame_index == last:
                started[result.expression_index] = time.perf_counter() - started[result.expression_index]
    finally:
        pipeline.attention_for_schedule = chosen
    return results, sum(started.values())


def part_drift(
    work_dir: Path, shapes: list[str], dtype: str, frames: int, size: tuple[int, int], expressions: int
) -> dict:
    """Per checkpoint shape, every `DRIFT_RUNS` run against `reference` in `dtype` (`fidelity`)."""
    report: dict = {}
    for shape in shapes:
        model = load_glus(checkpoint_folder(shape, work_dir), device="cpu", dtype=dtype)
        source = SyntheticSource(frames, size)
        texts = EXPRESSIONS[:expressions]
        load_before = os.getloadavg()[0]
        reference, reference_seconds = drift_run(model, source, texts, "reference", None, None)
        rows: dict = {"reference": {"last_frame_seconds": reference_seconds}}
        for name, (schedule, kernels, batch) in DRIFT_RUNS.items():
            results, last_seconds = drift_run(model, source, texts, schedule, kernels, batch)
            agreement = fidelity.compare_results(results, reference)
            rows[name] = {**asdict(agreement), "last_frame_seconds": last_seconds}
            logger.info("drift %s %s %s: %s, last frame %.1f s", shape, dtype, name, agreement, last_seconds)
        report[shape] = {"runs": rows, "load_average": [load_before, os.getloadavg()[0]]}
        del model
    return report


def print_drift(report: dict, dtype: str, frames: int, size: tuple[int, int], expressions: int) -> None:
    bound = fidelity.fidelity_bound(dtype)
    print(
        f"\n## Drift from `reference` in {dtype}: {frames} frames of {size[1]}x{size[0]}, {expressions} "
        f"expression(s), mem_stride 1 (contract: same [SEG] decisions, IoU >= {bound.min_iou})\n"
    )
    print(
        "| checkpoint | run | same [SEG] decisions | min IoU | mean IoU | identical masks | "
        "within contract | s, last frame |"
    )
    print("|---|---|---|---:|---:|---|---|---:|")
    for shape, entry in report.items():
        for name, row in entry["runs"].items():
            seconds = f"{row['last_frame_seconds']:.2f}"
            if name == "reference":
                print(f"| {shape} | reference | | | | | | {seconds} |")
                continue
            agreement = fidelity.Agreement(**{k: v for k, v in row.items() if k != "last_frame_seconds"})
            print(
                f"| {shape} | {name} | {row['same_decisions']} | {row['min_iou']:.5f} | "
                f"{row['mean_iou']:.5f} | {row['identical']} | {bound.holds(agreement)} | {seconds} |"
            )
        print("\n{}: load average before/after {:.1f}/{:.1f}".format(shape, *entry["load_average"]))


# --- steady state, end to end ----------------------------------------------------------------------


def steady_run(model: torch.nn.Module, kernels: attention.AttentionKernels, size: tuple[int, int]) -> dict:
    """One 8-frame `fast` run with mem_stride 1 on `kernels`: the last frame's seconds and every decision."""
    options = SegmentationOptions(schedule="fast", mem_stride=1)
    source = SyntheticSource(STEADY_FRAMES, size)
    chosen = attention.attention_for_schedule
    # The schedule picks the kernels; this benchmark overrides that choice to time the old default.
    import glus_cli.pipeline as pipeline

    pipeline.attention_for_schedule = lambda schedule: kernels
    stamps, results = [time.perf_counter()], []
    load_before = os.getloadavg()[0]
    try:
        for result in segment_video(model, source, EXPRESSIONS[:1], options):
            stamps.append(time.perf_counter())
            results.append(result)
    finally:
        pipeline.attention_for_schedule = chosen
    per_frame = [b - a for a, b in itertools.pairwise(stamps)]
    return {
        "steady_seconds_per_frame": per_frame[-1],
        "seconds_per_frame": per_frame,
        "decisions": [r.is_seg for r in results],
        "masks": [r.mask for r in results],
        "load_average": [load_before, os.getloadavg()[0]],
    }


def part_steady(work_dir: Path, plans: list[str], size: tuple[int, int]) -> dict:
    """The GLUS-shaped checkpoint at the steady state, per plan `dtype:kernels` (old default first)."""
    folder = checkpoint_folder("glus", work_dir)
    report: dict = {}
    for plan in plans:
        dtype, kernels = plan.split(":")
        model = load_glus(folder, device="cpu", dtype=dtype)
        logger.info("steady state: %s (%s)", plan, model.info.dtype_reason)
        report[plan] = steady_run(model, kernels, size)  # type: ignore[arg-type]
        logger.info("steady state %s: %.1f s per frame", plan, report[plan]["steady_seconds_per_frame"])
        del model
    baseline = report[plans[0]]
    baseline_masks = baseline["masks"]
    for plan in plans:
        row = report[plan]
        row["speedup"] = baseline["steady_seconds_per_frame"] / row["steady_seconds_per_frame"]
        row["same_decisions"] = row["decisions"] == baseline["decisions"]
        ious = []
        for a, b in zip(row.pop("masks"), baseline_masks, strict=True):
            union = (a | b).sum()
            ious.append(1.0 if union == 0 else float((a & b).sum() / union))
        row["min_iou"] = min(ious)
    return report


def print_steady(report: dict, size: tuple[int, int]) -> None:
    print(
        f"\n## GLUS-shaped checkpoint, steady state (7 memories, full window), {size[1]}x{size[0]}, "
        "1 expression\n"
    )
    print(
        "| plan (dtype:kernels) | s per frame at steady state | speed-up | same [SEG] decisions | "
        "worst mask IoU | per-frame seconds | load average before/after |"
    )
    print("|---|---:|---:|---|---:|---|---|")
    for plan, row in report.items():
        frames = " ".join(f"{s:.1f}" for s in row["seconds_per_frame"])
        print(
            f"| {plan} | {row['steady_seconds_per_frame']:.2f} | {row['speedup']:.2f}x | "
            f"{row['same_decisions']} | {row['min_iou']:.4f} | {frames} | "
            "{:.1f}/{:.1f} |".format(*row["load_average"])
        )


# --- a LLaMA-7B-shaped LLM ------------------------------------------------------------------------


def part_llm7b(num_layers: int, dtype: torch.dtype, repeats: int) -> dict:
    """Prefill seconds of a LLaMA-7B-shaped decoder with random weights, per layer and scaled to 32."""
    from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

    from glus_cli.model.mllm import RotaryTable

    config = LlamaConfig(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=num_layers,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32004,
        max_position_embeddings=4096,
        attn_implementation="eager",
    )
    with torch.device("meta"):
        llm = LlamaForCausalLM(config).model
    generator = torch.Generator().manual_seed(0)
    for module in [*llm.layers, llm.norm]:  # one layer at a time: the peak is the weights once
        module.to_empty(device="cpu")
        for parameter in module.parameters():
            with torch.no_grad():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
        module.to(dtype)
    llm.embed_tokens = torch.nn.Identity()  # inputs are embeddings (image tokens spliced in)
    llm.rotary_emb = RotaryTable(128, 10000.0, 4096).to(dtype)
    llm.eval()
    hidden = torch.randn(1, PROMPT_POSITIONS, 4096, generator=generator).to(dtype) * 0.02
    weights_gb = sum(p.numel() * p.element_size() for p in llm.parameters()) / 1e9

    def full() -> torch.Tensor:
        return llm(inputs_embeds=hidden).last_hidden_state

    prefix_cache = DynamicCache()
    with torch.inference_mode():
        llm(inputs_embeds=hidden[:, :PREFIX_POSITIONS], past_key_values=prefix_cache, use_cache=True)
    prefix = [(layer.keys, layer.values) for layer in prefix_cache.layers]

    def suffix() -> torch.Tensor:
        cache = DynamicCache(ddp_cache_data=prefix)
        return llm(inputs_embeds=hidden[:, PREFIX_POSITIONS:], past_key_values=cache, use_cache=True)

    load_before = os.getloadavg()[0]
    with torch.inference_mode():
        full_seconds = seconds(full, repeats)
        suffix_seconds = seconds(suffix, repeats)
    scale = 32 / num_layers
    return {
        "layers": num_layers,
        "dtype": str(dtype).removeprefix("torch."),
        "weights_gb": weights_gb,
        "prefill_716_seconds": full_seconds,
        "suffix_406_seconds": suffix_seconds,
        "prefill_716_seconds_32_layers": full_seconds * scale,
        "suffix_406_seconds_32_layers": suffix_seconds * scale,
        "load_average": [load_before, os.getloadavg()[0]],
        "cpu": hardware.probe_device(torch.device("cpu")).detail,
    }


def print_llm7b(report: dict) -> None:
    measured = "measured" if report["layers"] == 32 else f"scaled from {report['layers']} measured layer(s)"
    print(
        f"\n## LLaMA-7B-shaped LLM, random weights, {report['dtype']} ({report['weights_gb']:.1f} GB of "
        f"weights for {report['layers']} layers), CPU: {report['cpu']}\n"
    )
    print("| prefill | s, measured layers | s, 32 layers |")
    print("|---|---:|---:|")
    print(
        f"| 716 positions (reference) | {report['prefill_716_seconds']:.2f} | "
        f"{report['prefill_716_seconds_32_layers']:.1f} ({measured}) |"
    )
    print(
        f"| 406-position suffix on a 310-position cache (fast) | {report['suffix_406_seconds']:.2f} | "
        f"{report['suffix_406_seconds_32_layers']:.1f} ({measured}) |"
    )
    print("\nload average before/after: {:.1f}/{:.1f}".format(*report["load_average"]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--parts", nargs="+", choices=("attention", "drift", "steady", "llm7b"), default=["attention"]
    )
    parser.add_argument("--repeats", type=int, default=1, help="timed repeats (best of), after one warm-up")
    parser.add_argument(
        "--steady-plans",
        nargs="+",
        help="dtype:kernels pairs, the first is the baseline (default: float32:official and the plan's "
        "dtype:fastest)",
    )
    parser.add_argument("--size", default="240x320", help="frame size HxW of the steady-state run")
    parser.add_argument("--drift-shapes", nargs="+", choices=("tiny", "glus"), default=["tiny", "glus"])
    parser.add_argument("--drift-dtype", default="bfloat16", choices=("bfloat16", "float32"))
    parser.add_argument("--drift-frames", type=int, default=STEADY_FRAMES)
    parser.add_argument("--drift-expressions", type=int, default=2)
    parser.add_argument("--llm-layers", type=int, default=32)
    parser.add_argument("--llm-dtype", default="bfloat16", choices=("bfloat16", "float32"))
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "glus-bench")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    for noisy in ("transformers", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    height, width = (int(side) for side in args.size.lower().split("x"))

    plan = precision_plan("auto", torch.device("cpu"))
    report: dict = {"machine": machine(), "precision_plan": {"dtype": plan.dtype, "reason": plan.reason}}
    print("# glus-cli precision and kernel benchmark\n")
    print(", ".join(f"{key}: {value}" for key, value in report["machine"].items()))
    print(f"\nprecision plan here: {plan.dtype} ({plan.reason}); load average {os.getloadavg()[0]:.1f}")
    if "attention" in args.parts:
        report["attention"] = part_attention(args.repeats)
        print_attention(report["attention"])
    if "drift" in args.parts:
        drift = (args.drift_dtype, args.drift_frames, (height, width), args.drift_expressions)
        report["drift"] = part_drift(args.work_dir, args.drift_shapes, *drift)
        print_drift(report["drift"], *drift)
    if "steady" in args.parts:
        plans = args.steady_plans or ["float32:official", f"{plan.dtype}:fastest"]
        report["steady"] = part_steady(args.work_dir, plans, (height, width))
        print_steady(report["steady"], (height, width))
    if "llm7b" in args.parts:
        report["llm7b"] = part_llm7b(args.llm_layers, getattr(torch, args.llm_dtype), args.repeats)
        print_llm7b(report["llm7b"])
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
