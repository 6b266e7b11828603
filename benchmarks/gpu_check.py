"""One-GPU check of glus-cli: environment, device/dtype audit, syncs, stage speed, 7B-shaped LLM, exactness.

Prints one JSON document (and writes it to `--out`). On one GPU the whole run takes under 9 minutes:

    python benchmarks/gpu_check.py --out gpu_check.json

Sections (keys of the JSON):
- `environment`: torch/CUDA versions, the GPU and its compute capability, bf16 support, the measured bf16
  matmul TFLOP/s and copy bandwidth, whether the flash SDPA kernel runs;
- `audit`: parameters, buffers and plain tensor attributes of the loaded model that are off its device,
  or floating-point in another dtype (sam2's `freqs_cis` is a plain attribute, and complex);
- `syncs_per_frame`: host-device synchronisations per query frame for each schedule and 1 / 4
  expressions, counted with `torch.cuda.set_sync_debug_mode("warn")`, and where they come from;
- `speed`: per shape (`tiny`, and `glus`: LLaMA-7B width with 2 layers, CLIP ViT-L/14, SAM2 hiera-L),
  schedule and number of expressions: per-stage ms per frame (the benchmark's stage wrappers, synchronised
  around each stage), end-to-end ms per frame and FPS with the host threads on and off, host ms per frame
  (end to end minus the model's stages), peak GPU memory;
- `llm_7b`: a 32-layer LLaMA-7B-shaped LLM with random bf16 weights through the project's
  `SegLanguageModel` (eager attention, its `RotaryTable`): prefill ms at the full prompt, at the `fast`
  suffix on a cached prefix, at batch 4; the largest hidden-state difference between prefix + suffix
  and the full forward; peak memory;
- `clip_batch`: whether CLIP gives an image the same bits alone and in a batch of 8 (`fast-exact`'s
  premise), per shape;
- `full_size`: the full-size synthetic GLUS (LLaMA-7B at 32 layers with the tiny vocabulary, CLIP-L,
  SAM2-L; `glus_cli.testing.full_checkpoint`) built on the machine's disk when the GPU has >= 40 GB, then
  `reference` and `fast` with 1 and 4 expressions: FPS (of the video and per expression), host ms per
  frame, peak GPU memory, `[SEG]` answers, `fast` against `reference`; runs that would pass the 9-minute
  budget are skipped and listed;
- `exactness`: per shape, `fast-exact` and `fast` against `reference` in the run's dtype (bf16 on a
  GPU): same `[SEG]` decisions, worst per-frame mask IoU, bit-identical masks; and the host threads on
  against off (must be bit-identical).

`--quick` runs everything small (tiny checkpoint only, a few frames, a 2-layer narrow LLM, the full-size
section at 2 layers and narrow widths) in seconds on the CPU; the test suite runs it so that the script
cannot rot. Figures that need CUDA are null there.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from stage_timing import (
    EXPRESSIONS,
    SCHEDULES,
    STAGES,
    RunRecord,
    SyntheticSource,
    compare,
    load_model,
    timed_run,
    warm_up,
)
from torch import nn
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

from glus_cli.model.glus import GlusModel, load_glus, resolve_device
from glus_cli.model.mllm import RotaryTable, SegLanguageModel
from glus_cli.pipeline import segment_video
from glus_cli.protocol import FrameResult, SegmentationOptions
from glus_cli.testing.checkpoint import ModelShape
from glus_cli.testing.full_checkpoint import FULL_SHAPE, NARROW_SHAPE, build_full_checkpoint

logger = logging.getLogger("gpu_check")

LLAMA_7B = {
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "vocab_size": 32003,
}
"""LLaMA-7B's shape (GLUS adds `[SEG]`, `<im_start>`, `<im_end>` to the 32000-token vocabulary)."""
LLAMA_QUICK = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "vocab_size": 1000,
}
PROMPT_POSITIONS = 716
"""Positions of a steady-state prompt with the real LLaMA vocabulary and N_C = N_Q = 4."""
PREFIX_POSITIONS = 310
"""Of which the prefix shared by every prompt of a video (`pipeline.shared_prefix_length`)."""


@dataclass(frozen=True)
class Plan:
    """The sizes of one check run (`full_*`: the `full_size` section's checkpoint)."""

    shapes: tuple[str, ...]
    frames: int
    size: tuple[int, int]
    expression_counts: tuple[int, ...]
    llm: dict[str, int]
    positions: int
    prefix: int
    repeats: int
    warmups: int
    full_shape: ModelShape = FULL_SHAPE
    full_layers: int = 32


FULL = Plan(("tiny", "glus"), 16, (720, 1280), (1, 4), LLAMA_7B, PROMPT_POSITIONS, PREFIX_POSITIONS, 10, 3)
QUICK = Plan(("tiny",), 2, (48, 64), (1, 2), LLAMA_QUICK, 48, 20, 2, 1, NARROW_SHAPE, 2)
FULL_SIZE_MIN_GPU_BYTES = 40 * 10**9
"""The full-size section runs on GPUs with at least this much memory (the 7B model takes about 16 GB)."""
FULL_SIZE_SCHEDULES = ("reference", "fast")
BUDGET_SECONDS = 9 * 60
"""The whole check's budget: the full-size section stops starting runs when it would pass it."""


# --- helpers -----------------------------------------------------------------------------------------


def synchronizer(device: torch.device) -> Callable[[], None] | None:
    """`torch.cuda.synchronize` on CUDA (stage times are then GPU times), None elsewhere."""
    return torch.cuda.synchronize if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float | None:
    """Peak allocated GPU memory since the last `reset_peak`, in MiB (None off CUDA)."""
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def median_ms(run: Callable[[], object], device: torch.device, repeats: int, warmups: int) -> float:
    """Median wall milliseconds of `run()` (synchronised on CUDA) after `warmups` untimed calls."""
    sync = synchronizer(device) or (lambda: None)
    for _ in range(warmups):
        run()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def untimed_run(
    model: GlusModel, source: SyntheticSource, count: int, schedule: str, threads: bool
) -> tuple[float, list[FrameResult]]:
    """Seconds and results of one `segment_video` run without stage wrappers (the real end-to-end time)."""
    options = SegmentationOptions(schedule=schedule, host_threads=threads)
    sync = synchronizer(model.device) or (lambda: None)
    sync()
    start = time.perf_counter()
    results = list(segment_video(model, source, EXPRESSIONS[:count], options))
    sync()
    return time.perf_counter() - start, results


# --- sections ----------------------------------------------------------------------------------------


def environment(device: torch.device, quick: bool) -> dict:
    """Versions, the GPU, and measured bf16 matmul and copy rates."""
    report: dict = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "device": str(device),
        "gpu": None,
        "capability": None,
        "bf16_supported": None,
        "bf16_tflops": None,
        "copy_tb_per_s": None,
        "flash_attention_runs": None,
    }
    size = 1024 if quick else 8192
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    ms = median_ms(lambda: a @ b, device, repeats=3 if quick else 10, warmups=1 if quick else 3)
    report["bf16_tflops"] = 2 * size**3 / (ms / 1000) / 1e12
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
        report["capability"] = list(torch.cuda.get_device_capability(device))
        report["bf16_supported"] = torch.cuda.is_bf16_supported()
        source = torch.empty(2**28, device=device, dtype=torch.uint8)  # 256 MiB
        target = torch.empty_like(source)
        copy_ms = median_ms(lambda: target.copy_(source), device, repeats=10, warmups=3)
        report["copy_tb_per_s"] = 2 * source.numel() / (copy_ms / 1000) / 1e12  # read + write
        report["flash_attention_runs"] = flash_runs(device)
    return report


def flash_runs(device: torch.device) -> bool:
    """Whether the flash SDPA kernel runs a (1, 1, 4096, 256) bf16 problem (SAM2 memory attention's)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(1, 1, 4096, 256, device=device, dtype=torch.bfloat16)
    try:
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            torch.nn.functional.scaled_dot_product_attention(q, q, q)
        torch.cuda.synchronize(device)
    except RuntimeError:
        return False
    return True


def audit(model: GlusModel) -> dict:
    """Tensors of the model off its device, or floating-point in another dtype than its compute dtype."""
    device, dtype = model.device, model.dtype

    def on_device(tensor: torch.Tensor) -> bool:
        return tensor.device.type == device.type and (tensor.device.index or 0) == (device.index or 0)

    tensors: list[tuple[str, str, torch.Tensor]] = [
        *(("parameter", name, t) for name, t in model.named_parameters()),
        *(("buffer", name, t) for name, t in model.named_buffers()),
    ]
    for module_name, module in model.named_modules():
        for attribute, value in vars(module).items():
            if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
                tensors.append(("attribute", f"{module_name}.{attribute}", value))
    off_device = [f"{kind} {name} on {t.device}" for kind, name, t in tensors if not on_device(t)]
    wrong_dtype = [
        f"{kind} {name} in {t.dtype}"
        for kind, name, t in tensors
        if t.is_floating_point() and t.dtype != dtype
    ]
    return {
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "tensors": len(tensors),
        "off_device": len(off_device),
        "wrong_dtype": len(wrong_dtype),
        "off_device_names": off_device[:20],
        "wrong_dtype_names": wrong_dtype[:20],
    }


def syncs_per_frame(model: GlusModel, plan: Plan) -> dict | None:
    """Synchronising CUDA calls per query frame, per schedule and expression count, with their call sites."""
    if model.device.type != "cuda":
        return None
    source = SyntheticSource(plan.frames, plan.size)
    report = {}
    for schedule in SCHEDULES:
        for count in plan.expression_counts:
            torch.cuda.synchronize()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    steps = sum(
                        1
                        for _ in segment_video(
                            model, source, EXPRESSIONS[:count], SegmentationOptions(schedule=schedule)
                        )
                    )
                finally:
                    torch.cuda.set_sync_debug_mode("default")
            syncs = [w for w in caught if "synchronizing" in str(w.message)]
            sites = Counter(f"{Path(w.filename).name}:{w.lineno}" for w in syncs)
            report[f"{schedule}/{count}"] = {
                "per_query_frame": len(syncs) / steps,
                "per_video_frame": len(syncs) / plan.frames,
                "total": len(syncs),
                "query_frames": steps,
                "sites": dict(sites.most_common(8)),
            }
    return report


def speed(model: GlusModel, plan: Plan, runs: dict[str, RunRecord], threaded: dict[str, list]) -> dict:
    """Per-stage ms per frame (serial, synchronised), end-to-end ms and FPS with threads on and off.

    The stage-timed runs (host threads off) are kept in `runs` and the results of the runs with the
    threads on in `threaded`, by "schedule/count", for `exactness`.
    """
    device = model.device
    source = SyntheticSource(plan.frames, plan.size)
    report = {}
    for schedule in SCHEDULES:
        for count in plan.expression_counts:
            key = f"{schedule}/{count}"
            reset_peak(device)
            run = timed_run(model, source, EXPRESSIONS[:count], schedule, synchronize=synchronizer(device))
            runs[key] = run
            threads_on, threaded[key] = untimed_run(model, source, count, schedule, threads=True)
            # On the CPU the stage timer costs nothing, so its run is the threads-off run; on a GPU its
            # synchronisations would slow the run, so time one without it.
            threads_off = run.seconds
            if device.type == "cuda":
                threads_off, _ = untimed_run(model, source, count, schedule, threads=False)
            model_seconds = sum(v for stage, v in run.stages.items() if stage not in ("preprocess", "other"))
            report[key] = {
                "stages_ms_per_frame": {s: 1000 * run.stages.get(s, 0.0) / plan.frames for s in STAGES},
                "ms_per_frame": 1000 * threads_on / plan.frames,
                "fps": plan.frames / threads_on,
                "ms_per_frame_threads_off": 1000 * threads_off / plan.frames,
                "host_ms_per_frame": 1000 * max(threads_off - model_seconds, 0.0) / plan.frames,
                "host_ms_per_frame_threads_on": 1000 * max(threads_on - model_seconds, 0.0) / plan.frames,
                "peak_mib": peak_mib(device),
            }
    return report


def exactness(plan: Plan, runs: dict[str, RunRecord], threaded: dict[str, list[FrameResult]]) -> dict:
    """From `speed`'s runs with the most expressions: `fast-exact` and `fast` against `reference`, and
    every schedule with the host threads on against off (must be bit-identical)."""
    count = max(plan.expression_counts)
    reference = runs[f"reference/{count}"]
    report: dict = {}
    for schedule in ("fast-exact", "fast"):
        agreement = compare(reference, runs[f"{schedule}/{count}"])
        keys = ("same_tokens", "identical_masks", "identical_scores", "min_iou", "seg_answers", "results")
        report[schedule] = {key: agreement[key] for key in keys}
    report["threads_on_vs_off_bit_identical"] = all(
        len(threaded[f"{schedule}/{count}"]) == len(runs[f"{schedule}/{count}"].results)
        and all(
            (a.expression_index, a.frame_index, a.direction)
            == (b.expression_index, b.frame_index, b.direction)
            and np.array_equal(a.mask, b.mask)
            and (a.iou, a.object_score) == (b.iou, b.object_score)
            for a, b in zip(threaded[f"{schedule}/{count}"], runs[f"{schedule}/{count}"].results, strict=True)
        )
        for schedule in SCHEDULES
    )
    return report


def clip_batch(model: GlusModel) -> dict:
    """CLIP tokens of each of 8 images alone against in one batch of 8: bit-exact, and the largest gap."""
    frames = [model.clip_preprocess(SyntheticSource(8, (240, 320)).read(i)) for i in range(8)]
    batch = torch.cat(frames)
    together = model.vision(batch)
    alone = torch.cat([model.vision(frame) for frame in frames])
    difference = (together.float() - alone.float()).abs().max().item()
    return {"bit_exact": bool(torch.equal(together, alone)), "max_abs_diff": difference}


def llm_7b(device: torch.device, plan: Plan) -> dict:
    """A LLaMA-7B-shaped LLM with random bf16 weights through `SegLanguageModel`: prefill times, prefix
    cache exactness, peak memory."""
    shape = plan.llm
    config = LlamaConfig(**shape, max_position_embeddings=4096, use_cache=False)
    config._attn_implementation = "eager"  # as glus-cli's LLM (transformers 4.31's attention)
    torch.manual_seed(0)
    reset_peak(device)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # parameters born in bf16: no fp32 copy of 7B weights
    try:
        with torch.device("meta"):
            llm = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default_dtype)
    llm = llm.to_empty(device=device)
    with torch.no_grad():
        for param in llm.parameters():
            param.normal_(0.0, 0.02)
        for name, param in llm.named_parameters():
            if name.endswith("norm.weight"):
                param.fill_(1.0)
    head_dim = shape["hidden_size"] // shape["num_attention_heads"]
    llm.model.rotary_emb = RotaryTable(head_dim, 10000.0, 4096).to(device=device, dtype=torch.bfloat16)
    text_hidden_fcs = nn.ModuleList([nn.Sequential(nn.Linear(shape["hidden_size"], 256))]).to(
        device, torch.bfloat16
    )
    language = SegLanguageModel(llm.eval(), text_hidden_fcs, seg_token_id=shape["vocab_size"] - 3)
    ids = torch.randint(0, shape["vocab_size"] - 3, (1, plan.positions), device=device)
    with torch.inference_mode():
        embeds = llm.get_input_embeddings()(ids)  # (1, L, hidden)
        prefix, suffix = embeds[:, : plan.prefix], embeds[:, plan.prefix :]
        cache = DynamicCache()
        language(prefix, past_key_values=cache)
        layers = [(layer.keys, layer.values) for layer in cache.layers]

        def suffix_forward(batch: int) -> torch.Tensor:
            cached = DynamicCache(
                ddp_cache_data=[(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in layers]
            )
            return language(suffix.expand(batch, -1, -1), past_key_values=cached)

        full = language(embeds)
        split = suffix_forward(1)
        difference = (full[:, plan.prefix :].float() - split.float()).abs()
        times = {
            "prefill_full_ms": median_ms(lambda: language(embeds), device, plan.repeats, plan.warmups),
            "prefill_suffix_ms": median_ms(lambda: suffix_forward(1), device, plan.repeats, plan.warmups),
        }
        reset_peak(device)
        times["prefill_suffix_batch4_ms"] = median_ms(
            lambda: suffix_forward(4), device, plan.repeats, plan.warmups
        )
    return {
        **{key: value for key, value in shape.items()},
        "positions": plan.positions,
        "prefix_positions": plan.prefix,
        **times,
        "prefix_vs_full_max_abs_diff": difference.max().item(),
        "prefix_vs_full_last_row_max_abs_diff": difference[:, -1].max().item(),
        "peak_mib_batch4": peak_mib(device),
    }


def full_size(device: torch.device, plan: Plan, work_dir: Path, dtype: str | None, deadline: float) -> dict:
    """The full-size synthetic GLUS (LLaMA-7B at `plan.full_layers` layers, CLIP-L, SAM2-L), built on this
    machine's disk (once, in `work_dir`) and run: per schedule (`reference`, `fast`) and 1 / 4 expressions,
    FPS of the video and per expression, host ms per frame (wall time outside the model's stages, threads
    off), peak GPU memory, and `fast`'s agreement with `reference`. Runs that would pass `deadline`
    (`time.perf_counter()` seconds) are skipped and listed.
    """
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        if total < FULL_SIZE_MIN_GPU_BYTES:
            return {"skipped": f"the GPU has {total / 1e9:.0f} GB, under {FULL_SIZE_MIN_GPU_BYTES / 1e9:.0f}"}
    root = work_dir / f"full-{plan.full_layers}L-{plan.full_shape.hidden_size}"
    report: dict = {"layers": plan.full_layers, "hidden_size": plan.full_shape.hidden_size}
    start = time.perf_counter()
    if not (root / "glus" / "config.json").is_file():
        build_full_checkpoint(root, num_layers=plan.full_layers, shape=plan.full_shape)
    report["build_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    model = load_glus(root / "glus", device=str(device), dtype=dtype, vision_tower=str(root / "clip"))
    report["load_seconds"] = time.perf_counter() - start
    report["dtype"] = model.info.dtype
    warm_up(model, 8)
    source = SyntheticSource(plan.frames, plan.size)
    runs: dict[str, RunRecord] = {}
    report["runs"], report["skipped_runs"] = {}, []
    for schedule in FULL_SIZE_SCHEDULES:
        for count in plan.expression_counts:
            key = f"{schedule}/{count}"
            last = max((run.seconds for run in runs.values()), default=0.0) * count
            if time.perf_counter() + last > deadline:
                report["skipped_runs"].append(key)
                continue
            reset_peak(device)
            run = timed_run(model, source, EXPRESSIONS[:count], schedule, synchronize=synchronizer(device))
            runs[key] = run
            model_seconds = sum(v for stage, v in run.stages.items() if stage not in ("preprocess", "other"))
            report["runs"][key] = {
                "stages_ms_per_frame": {s: 1000 * run.stages.get(s, 0.0) / plan.frames for s in STAGES},
                "fps": plan.frames / run.seconds,
                "fps_per_expression": plan.frames * count / run.seconds,
                "host_ms_per_frame": 1000 * max(run.seconds - model_seconds, 0.0) / plan.frames,
                "peak_mib": peak_mib(device),
                "seg_answers": sum(result.is_seg for result in run.results),
                "results": len(run.results),
            }
    report["fast_vs_reference"] = {
        str(count): compare(runs[f"reference/{count}"], runs[f"fast/{count}"])
        for count in plan.expression_counts
        if f"reference/{count}" in runs and f"fast/{count}" in runs
    }
    return report


# --- main --------------------------------------------------------------------------------------------


def attempt(name: str, measure: Callable[..., object], *args: object) -> object:
    """`measure(*args)`, or `{"error": ...}` when it raises: one failing section must not cost the GPU run."""
    logger.info("%s", name)
    try:
        return measure(*args)
    except Exception as error:
        logger.exception("%s failed", name)
        return {"error": f"{type(error).__name__}: {error}"}


def check(device: torch.device, plan: Plan, work_dir: Path, dtype: str | None, quick: bool) -> dict:
    """Every section, in order."""
    started = time.perf_counter()
    report: dict = {"quick": quick, "plan": {"frames": plan.frames, "size": list(plan.size)}}
    report["environment"] = attempt("environment", environment, device, quick)
    report["audit"], report["syncs_per_frame"], report["speed"] = {}, None, {}
    report["clip_batch"], report["exactness"] = {}, {}
    for shape in plan.shapes:
        model = attempt(f"{shape} checkpoint", load_model, shape, work_dir, str(device), dtype)
        if not isinstance(model, GlusModel):
            report["audit"][shape] = model
            continue
        warm_up(model, 8)
        report["audit"][shape] = attempt(f"{shape}: audit", audit, model)
        if shape == "tiny":
            report["syncs_per_frame"] = attempt("tiny: syncs", syncs_per_frame, model, plan)
        runs: dict[str, RunRecord] = {}
        threaded: dict[str, list[FrameResult]] = {}
        report["speed"][shape] = attempt(f"{shape}: speed", speed, model, plan, runs, threaded)
        report["clip_batch"][shape] = attempt(f"{shape}: CLIP batch", clip_batch, model)
        report["exactness"][shape] = attempt(f"{shape}: exactness", exactness, plan, runs, threaded)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    report["llm_7b"] = attempt("LLaMA-7B-shaped LLM", llm_7b, device, plan)
    deadline = started + BUDGET_SECONDS
    report["full_size"] = attempt("full-size GLUS", full_size, device, plan, work_dir, dtype, deadline)
    report["seconds"] = time.perf_counter() - started
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA, then MPS, then CPU), cuda, cuda:N, mps or cpu"
    )
    parser.add_argument("--dtype", default=None, help="model dtype (default: glus-cli's for the device)")
    parser.add_argument("--quick", action="store_true", help="small shapes, a few frames: seconds on a CPU")
    parser.add_argument("--frames", type=int, help="query frames per run (default 16, --quick 2)")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "glus-bench")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    plan = QUICK if args.quick else FULL
    if args.frames:
        plan = Plan(**{**plan.__dict__, "frames": args.frames})
    args.work_dir.mkdir(parents=True, exist_ok=True)
    report = check(device, plan, args.work_dir, args.dtype, args.quick)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    for noisy in ("transformers", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    main()
