"""Benchmark of glus-cli's inference schedules: `reference` (the official order of work) and the fast ones.

Three parts, each printed as a table (and written as JSON with `--json`):

- `schedules`: one expression on a short synthetic video; per-stage seconds per query frame (CLIP, LLM,
  SAM2 image encoder, SAM2 decoder + memory, preprocessing, the rest), end-to-end seconds per frame, the
  speed-up over `reference`, and how the masks and `[SEG]` decisions compare with `reference`'s.
- `expressions`: 1 against 4 expressions on the same video: seconds per frame and the cost ratio.
- `rss`: peak resident memory of a whole run on a 100-frame and a 1000-frame video (tiny checkpoint, small
  frames generated on the fly, each run in its own process).

Checkpoints are synthetic, in the official layout (`glus_cli.testing.checkpoint`): `tiny`, and `glus`, which
has the real widths where the cost is (LLaMA hidden 4096 with 2 layers, CLIP ViT-L/14, SAM2 hiera-L) so
that the ratios mean something on a CPU. They are built once into `--work-dir` and reused.

    .venv/bin/python benchmarks/bench_inference.py                      # everything (about 1.5 h on 2 cores)
    .venv/bin/python benchmarks/bench_inference.py --shapes tiny --parts schedules expressions
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from stage_timing import (
    EXPRESSIONS,
    SCHEDULES,
    STAGE_LABELS,
    STAGES,
    SyntheticSource,
    checkpoint_folder,
    compare,
    load_model,
    timed_run,
    warm_up,
)

from glus_cli.model.glus import GlusModel
from glus_cli.pipeline import segment_video
from glus_cli.protocol import SegmentationOptions

logger = logging.getLogger("bench_inference")

DEFAULT_FRAMES = {"tiny": 8, "glus": 6}
"""Query frames per timed run: the `glus` shape costs about 1.5 min per frame and expression on 2 cores."""

# --- parts -----------------------------------------------------------------------------------------


def part_schedules(model: GlusModel, num_frames: int, size: tuple[int, int]) -> dict:
    """Every schedule on one expression: per-stage times and agreement with `reference`."""
    source = SyntheticSource(num_frames, size)
    runs = {schedule: timed_run(model, source, EXPRESSIONS[:1], schedule) for schedule in SCHEDULES}
    reference = runs["reference"]
    return {
        schedule: {
            "seconds_per_frame": run.seconds_per_frame,
            "cpu_seconds_per_frame": run.cpu_seconds / num_frames,
            "stages_per_frame": {stage: run.stages.get(stage, 0.0) / num_frames for stage in STAGES},
            "speedup": reference.seconds / run.seconds,
            "load_average": [run.load_before, run.load_after],
            **compare(reference, run),
        }
        for schedule, run in runs.items()
    }


def part_expressions(
    model: GlusModel, num_frames: int, size: tuple[int, int], schedules: Sequence[str]
) -> dict:
    """1 against 4 expressions on the same video, per schedule."""
    source = SyntheticSource(num_frames, size)
    report = {}
    four_runs = {}
    for schedule in schedules:
        one = timed_run(model, source, EXPRESSIONS[:1], schedule)
        four_runs[schedule] = timed_run(model, source, EXPRESSIONS, schedule)
        four = four_runs[schedule]
        report[schedule] = {
            "one_seconds_per_frame": one.seconds_per_frame,
            "four_seconds_per_frame": four.seconds_per_frame,
            "ratio": four.seconds / one.seconds,
            "four_stages_per_frame": {stage: four.stages.get(stage, 0.0) / num_frames for stage in STAGES},
            "load_average": [one.load_before, four.load_after],
        }
        if "reference" in four_runs:
            report[schedule].update(compare(four_runs["reference"], four))
    return report


def part_rss(work_dir: Path, lengths: Sequence[int], schedules: Sequence[str], size: tuple[int, int]) -> dict:
    """Peak RSS of whole runs on the tiny checkpoint, each in a fresh process."""
    checkpoint_folder("tiny", work_dir)
    report: dict[str, dict[str, dict]] = {}
    for schedule in schedules:
        for length in lengths:
            command = [
                sys.executable,
                __file__,
                "--rss-child",
                "--work-dir",
                str(work_dir),
                "--schedule",
                schedule,
                "--rss-frames",
                str(length),
                "--size",
                f"{size[0]}x{size[1]}",
            ]
            logger.info("peak RSS: %s on %d frames", schedule, length)
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            report.setdefault(schedule, {})[str(length)] = json.loads(output.strip().splitlines()[-1])
    return report


def memory_mib() -> dict[str, float]:
    """This process's peak (VmHWM) and current (VmRSS) resident memory in MiB, from /proc/self/status.

    Not `getrusage`'s ru_maxrss: Linux keeps that across `exec`, so a child would report its parent's peak.
    """
    fields = {}
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            fields[name] = int(value.split()[0]) / 1024  # kB
    return {"peak": fields["VmHWM"], "current": fields["VmRSS"]}


def rss_child(work_dir: Path, schedule: str, num_frames: int, size: tuple[int, int]) -> None:
    """Run one video and print resident memory (MiB) after loading and after the run, as JSON."""
    model = load_model("tiny", work_dir)
    after_load = memory_mib()
    start = time.perf_counter()
    options = SegmentationOptions(schedule=schedule)
    count = sum(1 for _ in segment_video(model, SyntheticSource(num_frames, size), EXPRESSIONS[:1], options))
    seconds = time.perf_counter() - start
    after_run = memory_mib()
    report = {
        "results": count,
        "peak_rss_mib": after_run["peak"],
        "after_load_rss_mib": after_load["current"],
        "end_rss_mib": after_run["current"],
        "seconds": seconds,
    }
    print(json.dumps(report))


# --- report ----------------------------------------------------------------------------------------


def machine() -> dict:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with Path("/proc/cpuinfo").open(encoding="utf-8") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def print_schedules(shape: str, num_frames: int, size: tuple[int, int], report: dict) -> None:
    print(
        f"\n## {shape} checkpoint: {num_frames} frames of {size[1]}x{size[0]}, 1 expression (s per frame)\n"
    )
    print("| stage | " + " | ".join(SCHEDULES) + " |")
    print("|---|" + "---:|" * len(SCHEDULES))
    for stage in STAGES:
        cells = [f"{report[s]['stages_per_frame'][stage]:.3f}" for s in SCHEDULES]
        print(f"| {STAGE_LABELS[stage]} | " + " | ".join(cells) + " |")
    print(
        "| **end to end** | "
        + " | ".join(f"**{report[s]['seconds_per_frame']:.3f}**" for s in SCHEDULES)
        + " |"
    )
    print(
        "| CPU seconds | " + " | ".join(f"{report[s]['cpu_seconds_per_frame']:.3f}" for s in SCHEDULES) + " |"
    )
    print("| speed-up vs reference | " + " | ".join(f"{report[s]['speedup']:.2f}x" for s in SCHEDULES) + " |")
    print("| same [SEG] decisions | " + " | ".join(str(report[s]["same_tokens"]) for s in SCHEDULES) + " |")
    print(
        "| frames answering [SEG] | "
        + " | ".join(f"{report[s]['seg_answers']}/{report[s]['results']}" for s in SCHEDULES)
        + " |"
    )
    print(
        "| bit-identical masks | " + " | ".join(str(report[s]["identical_masks"]) for s in SCHEDULES) + " |"
    )
    print(
        "| identical IoU/object scores | "
        + " | ".join(str(report[s]["identical_scores"]) for s in SCHEDULES)
        + " |"
    )
    print(
        "| worst per-frame mask IoU | " + " | ".join(f"{report[s]['min_iou']:.4f}" for s in SCHEDULES) + " |"
    )
    print(
        "| load average before/after | "
        + " | ".join("{:.1f}/{:.1f}".format(*report[s]["load_average"]) for s in SCHEDULES)
        + " |"
    )


def print_expressions(shape: str, num_frames: int, report: dict) -> None:
    print(f"\n## {shape} checkpoint: 1 vs 4 expressions, {num_frames} frames (s per frame)\n")
    print("| schedule | 1 expression | 4 expressions | 4 / 1 |")
    print("|---|---:|---:|---:|")
    for schedule, row in report.items():
        one, four = row["one_seconds_per_frame"], row["four_seconds_per_frame"]
        print(f"| {schedule} | {one:.3f} | {four:.3f} | {row['ratio']:.2f}x |")
    if "reference" in report:
        print()
        for schedule, row in report.items():
            if schedule != "reference" and "min_iou" in row:
                speedup = report["reference"]["four_seconds_per_frame"] / row["four_seconds_per_frame"]
                print(
                    f"4 expressions, {schedule} against reference: {speedup:.2f}x; same [SEG] decisions: "
                    f"{row['same_tokens']}, bit-identical masks: {row['identical_masks']}, "
                    f"worst per-frame mask IoU: {row['min_iou']:.4f}"
                )


def print_rss(size: tuple[int, int], report: dict) -> None:
    print(f"\n## Peak RSS, tiny checkpoint, {size[1]}x{size[0]} frames, 1 expression\n")
    print("| schedule | frames | peak RSS (MiB) | RSS after loading (MiB) | RSS at the end (MiB) | seconds |")
    print("|---|---:|---:|---:|---:|---:|")
    for schedule, rows in report.items():
        for length, row in rows.items():
            print(
                f"| {schedule} | {length} | {row['peak_rss_mib']:.0f} | {row['after_load_rss_mib']:.0f} | "
                f"{row['end_rss_mib']:.0f} | {row['seconds']:.0f} |"
            )
        lengths = sorted(rows, key=int)
        if len(lengths) > 1:
            growth = rows[lengths[-1]]["peak_rss_mib"] / rows[lengths[0]]["peak_rss_mib"] - 1
            print(f"| {schedule}: peak, {lengths[-1]} vs {lengths[0]} frames | | {growth:+.1%} | | | |")


def parse_size(text: str) -> tuple[int, int]:
    height, width = text.lower().split("x")
    return int(height), int(width)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", choices=("tiny", "glus"), default=["tiny", "glus"])
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=("schedules", "expressions", "rss"),
        default=["schedules", "expressions", "rss"],
    )
    parser.add_argument("--frames", type=int, help="query frames per timed run (default: tiny 8, glus 6)")
    parser.add_argument(
        "--size", type=parse_size, default=(240, 320), help="frame size HxW (default 240x320)"
    )
    parser.add_argument(
        "--expression-schedules",
        nargs="+",
        choices=SCHEDULES,
        help="schedules timed with 1 and 4 expressions (default: all on tiny, fast on glus)",
    )
    parser.add_argument("--rss-frames", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rss-schedules", nargs="+", choices=SCHEDULES, default=["fast"])
    parser.add_argument(
        "--rss-size", type=parse_size, default=(48, 64), help="frame size HxW of the RSS runs"
    )
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "glus-bench")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--schedule", default="fast", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    for noisy in ("transformers", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if args.rss_child:
        rss_child(args.work_dir, args.schedule, args.rss_frames[0], args.size)
        return

    report: dict = {"machine": machine()}
    print("# glus-cli inference benchmark\n")
    print(", ".join(f"{key}: {value}" for key, value in report["machine"].items()))
    for shape in args.shapes if {"schedules", "expressions"} & set(args.parts) else []:
        num_frames = args.frames or DEFAULT_FRAMES[shape]
        model = load_model(shape, args.work_dir)
        warm_up(model, 8)
        if "schedules" in args.parts:
            report[f"{shape}/schedules"] = part_schedules(model, num_frames, args.size)
            print_schedules(shape, num_frames, args.size, report[f"{shape}/schedules"])
        if "expressions" in args.parts:
            schedules = args.expression_schedules or (SCHEDULES if shape == "tiny" else ("fast",))
            report[f"{shape}/expressions"] = part_expressions(model, num_frames, args.size, schedules)
            print_expressions(shape, num_frames, report[f"{shape}/expressions"])
        del model
    if "rss" in args.parts:
        report["rss"] = part_rss(args.work_dir, args.rss_frames, args.rss_schedules, args.rss_size)
        print_rss(args.rss_size, report["rss"])
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
