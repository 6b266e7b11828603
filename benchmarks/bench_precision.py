"""Benchmark of the precision plan and SAM2's attention kernels on this machine (issue #11).

Three parts, each printed as a table (and written as JSON with `--json`):

- `attention`: one memory-attention cross-attention at the steady state (4096 queries over 7 x 4096 memory
  tokens, width 256, one head, as SAM2's `RoPEAttention` calls SDPA) on the math kernel against the
  fastest kernel (CPU flash), in fp32 and bf16: seconds and the largest difference.
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
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from glus_cli import hardware
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


def part_attention(repeats: int) -> dict:
    """Math against the fastest SDPA kernel at 7 memories, in fp32 and bf16."""
    generator = torch.Generator().manual_seed(0)
    shape_q = (1, 1, MEMORY_TOKENS, SAM2_WIDTH)
    shape_kv = (1, 1, NUM_MEMORIES * MEMORY_TOKENS, SAM2_WIDTH)
    q, k, v = (torch.randn(s, generator=generator) for s in (shape_q, shape_kv, shape_kv))
    report = {}
    cpu = torch.device("cpu")
    for dtype in (torch.float32, torch.bfloat16):
        inputs = [t.to(dtype) for t in (q, k, v)]
        outputs = {}
        row = {}
        for name, kernels in (("math", "official"), ("flash", None), ("fast", "fastest")):

            def call(
                kernels: attention.AttentionKernels | None = kernels,
                qkv: list = inputs,
                dt: torch.dtype = dtype,
            ) -> torch.Tensor:
                if kernels is None:  # CPU flash in the inputs' dtype
                    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
                        return F.scaled_dot_product_attention(*qkv)
                # What the schedules run: official = math; fastest = flash (on fp32 copies for bf16).
                return attention.run_attention(lambda: F.scaled_dot_product_attention(*qkv), cpu, dt, kernels)

            with torch.inference_mode():
                row[f"{name}_seconds"] = seconds(call, repeats)
                outputs[name] = call().float()
            logger.info("attention %s %s: %.2f s", dtype, name, row[f"{name}_seconds"])
        for name in ("flash", "fast"):
            row[f"{name}_max_abs_difference"] = float((outputs["math"] - outputs[name]).abs().max())
            row[f"{name}_speedup"] = row["math_seconds"] / row[f"{name}_seconds"]
        report[str(dtype).removeprefix("torch.")] = row
    report["load_average_after"] = os.getloadavg()[0]
    return report


def print_attention(report: dict) -> None:
    print(
        f"\n## Memory attention at {NUM_MEMORIES} memories ({MEMORY_TOKENS} x "
        f"{NUM_MEMORIES * MEMORY_TOKENS}, width {SAM2_WIDTH}), s per call\n"
    )
    print("| dtype | kernel | seconds | speed-up over math | max abs difference to math |")
    print("|---|---|---:|---:|---:|")
    labels = {"math": "math (official)", "flash": "CPU flash", "fast": "fast's choice"}
    for dtype in ("float32", "bfloat16"):
        row = report[dtype]
        for name, label in labels.items():
            speedup = row.get(f"{name}_speedup", 1.0)
            difference = row.get(f"{name}_max_abs_difference", 0.0)
            print(f"| {dtype} | {label} | {row[f'{name}_seconds']:.2f} | {speedup:.1f}x | {difference:.1e} |")
    print(f"\nload average after: {report['load_average_after']:.1f}")


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
    parser.add_argument("--parts", nargs="+", choices=("attention", "steady", "llm7b"), default=["attention"])
    parser.add_argument("--repeats", type=int, default=1, help="timed repeats (best of), after one warm-up")
    parser.add_argument(
        "--steady-plans",
        nargs="+",
        help="dtype:kernels pairs, the first is the baseline (default: float32:official and the plan's "
        "dtype:fastest)",
    )
    parser.add_argument("--size", default="240x320", help="frame size HxW of the steady-state run")
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
