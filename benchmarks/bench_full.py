"""End-to-end benchmark of `glus segment` on the full-size synthetic GLUS: the source of the README's 7B rows.

It runs the real CLI, as a user does (a subprocess per run), on the full shape (LLaMA-7B at `--layers`
depth, CLIP ViT-L/14, SAM2 hiera-L; `glus_cli.testing.full_checkpoint`) for every plan (dtype, quantisation)
that the memory check admits on this machine, with 1 and 4 expressions, and reports per run:

- load seconds (the CLI's own `load_model` timing): cold, after dropping the page cache (only when root;
  else null), then warm;
- seconds per frame at the steady state, from the time each frame's mask file appears: the frames from
  `--steady-from` on (default 19, where the memory bank first holds its 7 memories at stride 3), and over
  every frame after the first;
- the stage split per frame (`stage_timing.stage_timer` around the model the CLI loads): CLIP, LLM, SAM2
  image encoder, SAM2 decoder + memory, and host (the rest of the wall time: decoding, preprocessing not
  hidden by the prefetch thread, writing masks);
- the peak RSS of the CLI process against the estimate its memory check made (the headroom must be >= 5%;
  `--llm-batch-size`, passed to the CLI, changes both);
- the `[SEG]` answers (a frame without `[SEG]` gets no mask: its timing would not be the real one).

Writes JSON (`--json`) and prints a table. Each run is one process; on a shared machine run the whole
benchmark under `flock /tmp/glus-heavy.lock`. A 7B frame takes 10-40 s on 2 CPU cores: measure the steady
state at reduced depth (`--layers 8`) and a short full-depth run (`--layers 32 --frames 6`).

    .venv/bin/python benchmarks/bench_full.py --work-dir /work/big --layers 32 --frames 6 --expressions 1
    .venv/bin/python benchmarks/bench_full.py --layers 2 --frames 3 --narrow   # the test suite's smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stage_timing import EXPRESSIONS, STAGES

logger = logging.getLogger("bench_full")

PLANS = (("bfloat16", None), ("float32", None), ("bfloat16", "8bit"), ("bfloat16", "4bit"))
"""Every plan the CLI offers on a CPU, in the order tried."""
FRAME_SIZE = (540, 960)
STEADY_FROM = 19
"""The first query frame whose memory bank holds all 7 memories at stride 3 (the protocol's values)."""
MIN_HEADROOM = 0.05
_CHILD_FLAG = "--as-cli"
_MODEL_STAGES = ("clip", "llm", "sam2_encoder", "decoder_memory")


@dataclass(frozen=True)
class Plan:
    """A dtype and quantisation, with the memory check's estimate and whether it fits here."""

    dtype: str
    quantize: str | None
    estimate_gb: float
    admitted: bool

    @property
    def name(self) -> str:
        """`bfloat16`, `bfloat16+8bit`."""
        return self.dtype + (f"+{self.quantize}" if self.quantize else "")

    def flags(self) -> list[str]:
        """The CLI flags of this plan."""
        return ["--dtype", self.dtype] + (["--quantize", self.quantize] if self.quantize else [])


# --- the CLI, instrumented (runs in the child process) --------------------------------------------------


def run_as_cli(stages_path: Path, cli_args: list[str]) -> None:
    """Run `glus <cli_args>` in this process with the stage timer around the model it loads.

    The model is wrapped where the CLI loads it (`glus_cli.model.glus.load_glus`), so the command runs its
    own code path; the stage seconds and `[SEG]` token ids go to `stages_path` when it exits.
    """
    from stage_timing import stage_timer

    import glus_cli.model.glus as glus_module
    from glus_cli.cli import main

    stages: dict[str, float] = {}
    tokens: list[int] = []
    timers = contextlib.ExitStack()
    load = glus_module.load_glus

    def load_and_time(*args: object, **kwargs: object) -> object:
        model = load(*args, **kwargs)
        timers.enter_context(stage_timer(model, stages, tokens))
        return model

    glus_module.load_glus = load_and_time
    sys.argv = ["glus", *cli_args]
    try:
        main()
    finally:
        timers.close()
        stages_path.write_text(json.dumps({"stages": stages, "tokens": tokens}), encoding="utf-8")


# --- the benchmark (parent process) ---------------------------------------------------------------------


def admitted_plans(glus_dir: Path, clip_dir: Path, frame_size: tuple[int, int]) -> list[Plan]:
    """Every CPU plan with the memory check's estimate at this frame size, admitted if it fits now."""
    import torch

    from glus_cli import hardware
    from glus_cli.model.config import GlusConfig
    from glus_cli.model.footprint import Workload, count_tensors, estimate_footprint

    config = GlusConfig.from_pretrained(glus_dir)
    tensors = count_tensors(glus_dir, clip_dir)
    available, _ = hardware.available_memory(torch.device("cpu"))
    plans = []
    for dtype, quantize in PLANS:
        footprint = estimate_footprint(
            config, tensors, torch.device("cpu"), dtype, quantize, Workload(frame_size)
        )
        plans.append(Plan(dtype, quantize, round(footprint.total / 1e9, 2), footprint.total <= available))
    return plans


def drop_page_cache() -> bool:
    """Drop the kernel's page cache (root only), so the next load reads the weights from disk."""
    if os.geteuid() != 0:
        return False
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n", encoding="ascii")
    except OSError:
        return False
    return True


def frame_times(out_dir: Path, num_expressions: int) -> list[float]:
    """When each frame's masks were all written (the latest mask file of the frame, over expressions)."""
    latest: dict[str, float] = {}
    for mask in out_dir.glob("*/*.png"):
        latest[mask.stem] = max(latest.get(mask.stem, 0.0), mask.stat().st_mtime)
    counts: dict[str, int] = {}
    for mask in out_dir.glob("*/*.png"):
        counts[mask.stem] = counts.get(mask.stem, 0) + 1
    return [latest[name] for name in sorted(latest) if counts[name] == num_expressions]


def run_cli(
    checkpoint: Path,
    frames: Path,
    plan: Plan,
    num_expressions: int,
    work: Path,
    cold: bool,
    llm_batch_size: int | None = None,
) -> dict:
    """One `glus segment` run of `plan` on `frames`: timings, stage split, peak RSS."""
    out_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    stages_path = out_dir.with_suffix(".stages.json")
    expressions = list(EXPRESSIONS[:num_expressions])
    cli_args = ["segment", str(frames), *expressions, "--model", str(checkpoint / "glus")]
    cli_args += ["--vision-tower", str(checkpoint / "clip"), "--device", "cpu", *plan.flags()]
    cli_args += ["--output-dir", str(out_dir), "--format", "png", "--quiet"]
    if llm_batch_size is not None:
        cli_args += ["--llm-batch-size", str(llm_batch_size)]
    dropped = drop_page_cache() if cold else False
    load_before = os.getloadavg()[0]
    start = time.time()
    child = subprocess.Popen(
        [sys.executable, __file__, _CHILD_FLAG, str(stages_path), "--", *cli_args],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stderr=subprocess.PIPE,
        text=True,
    )
    _, stderr = child.communicate()
    wall = time.time() - start
    if child.returncode != 0:
        raise RuntimeError(f"glus segment failed ({child.returncode}): {stderr.strip()[-2000:]}")
    summary = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
    timing = json.loads(stages_path.read_text(encoding="utf-8"))
    times = frame_times(out_dir, num_expressions)
    record = _run_record(plan, num_expressions, summary, timing, times, wall, dropped, load_before)
    return {**record, "llm_batch_size": llm_batch_size, "run_folder": str(out_dir)}


def _run_record(
    plan: Plan,
    num_expressions: int,
    summary: dict,
    timing: dict,
    times: list[float],
    wall: float,
    cold: bool,
    load_before: float,
) -> dict:
    frames = len(times)
    steady_from = STEADY_FROM if frames > STEADY_FROM + 1 else max(1, frames // 2)
    segment_seconds = summary["timings_seconds"]["segment"]
    stages = {stage: timing["stages"].get(stage, 0.0) / frames for stage in STAGES if stage != "other"}
    stages["host"] = segment_seconds / frames - sum(stages[stage] for stage in _MODEL_STAGES)
    rss_gb = summary["memory"]["peak_rss_mib"] * 2**20 / 1e9  # the CLI process's own peak
    without_seg = sum(len(e["frames_without_seg"]) for e in summary["expressions"])
    return {
        "plan": plan.name,
        "expressions": num_expressions,
        "frames": frames,
        "load_seconds": summary["timings_seconds"]["load_model"],
        "cold": cold,
        "seconds_per_frame_steady": _per_frame(times, steady_from),
        "steady_from_frame": steady_from,
        "seconds_per_frame_after_first": _per_frame(times, 1),
        "stages_per_frame": {k: round(v, 3) for k, v in stages.items()},
        "preprocess_overlapped": "preprocess" in timing["stages"],
        "peak_rss_gb": round(rss_gb, 2),
        "estimate_gb": plan.estimate_gb,
        "headroom": round(summary["model"]["memory_estimate_gb"] / rss_gb - 1, 3),  # the run's own check
        "cli_estimate_gb": summary["model"]["memory_estimate_gb"],
        "frames_without_seg": without_seg,
        "wall_seconds": round(wall, 1),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def _per_frame(times: list[float], first: int) -> float | None:
    """Seconds per frame between frame `first - 1`'s masks and the last frame's."""
    if len(times) <= first:
        return None
    return round((times[-1] - times[first - 1]) / (len(times) - first), 3)


def ensure_checkpoint(work: Path, layers: int, tokenizer: Path | None, narrow: bool) -> Path:
    """The full-shape checkpoint root under `work` (built on first use, in a child process)."""
    vocab = "llama" if tokenizer else "tiny"
    root = work / f"full-{layers}L-{vocab}{'-narrow' if narrow else ''}"
    if (root / "glus" / "config.json").is_file():
        return root
    logger.info("building %s", root)
    shape = "NARROW_SHAPE" if narrow else "FULL_SHAPE"
    code = (
        "import sys; from glus_cli.testing import full_checkpoint as f; "
        f"f.build_full_checkpoint(sys.argv[1], num_layers={layers}, shape=f.{shape}, "
        "tokenizer_dir=sys.argv[2] or None)"
    )
    subprocess.run([sys.executable, "-c", code, str(root), str(tokenizer or "")], check=True)
    return root


def ensure_frames(work: Path, num_frames: int, size: tuple[int, int]) -> Path:
    """A folder of `num_frames` synthetic JPEG frames (the MeViS layout)."""
    from glus_cli.testing.videos import write_frame_folder

    folder = work / f"frames-{num_frames}-{size[0]}x{size[1]}"
    if not (folder / f"{num_frames - 1:05d}.jpg").is_file():
        write_frame_folder(folder, num_frames, size)
    return folder


def table(runs: Sequence[dict]) -> str:
    """The runs as a Markdown table."""
    header = "| plan | expr. | frames | load s | s/frame steady | CLIP | LLM | SAM2 enc. | dec+mem | host "
    header += "| peak RSS GB | estimate GB | headroom | no [SEG] | load avg |"
    lines = [header, "|" + "---|" * 15]
    for r in runs:
        s = r["stages_per_frame"]
        steady = r["seconds_per_frame_steady"]
        batch = f" (batch {r['llm_batch_size']})" if r.get("llm_batch_size") else ""
        lines.append(
            f"| {r['plan']} | {r['expressions']}{batch} | {r['frames']} | "
            f"{r['load_seconds']:.1f}{' (cold)' if r['cold'] else ''} | "
            f"{'-' if steady is None else f'{steady:.2f}'} (from {r['steady_from_frame']}) | "
            f"{s['clip']:.2f} | {s['llm']:.2f} | {s['sam2_encoder']:.2f} | {s['decoder_memory']:.2f} | "
            f"{s['host']:.2f} | {r['peak_rss_gb']:.2f} | {r['cli_estimate_gb']:.2f} | {r['headroom']:+.1%} | "
            f"{r['frames_without_seg']} | {r['load_average'][0]:.1f}-{r['load_average'][1]:.1f} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=None, help="checkpoints, frames, run folders")
    parser.add_argument("--checkpoint", type=Path, help="an existing root with glus/ and clip/")
    parser.add_argument("--layers", type=int, default=32, help="LLaMA layers of the built checkpoint")
    parser.add_argument("--tokenizer", type=Path, help="LLaMA tokenizer folder (real vocabulary)")
    parser.add_argument("--narrow", action="store_true", help="narrow test widths (for the test suite)")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--expressions", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--plans", nargs="+", help="plan names to run (default: every admitted one)")
    parser.add_argument("--cold", action="store_true", help="first run of each plan after dropping caches")
    parser.add_argument("--llm-batch-size", type=int, help="passed to glus segment (default: its own)")
    parser.add_argument("--json", type=Path, help="write the report here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the benchmark; print the table, write `--json`, return the report."""
    args = parse_args(argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-full-"))
    work.mkdir(parents=True, exist_ok=True)
    checkpoint = args.checkpoint or ensure_checkpoint(work, args.layers, args.tokenizer, args.narrow)
    frames = ensure_frames(work, args.frames, FRAME_SIZE)
    plans = admitted_plans(checkpoint / "glus", checkpoint / "clip", FRAME_SIZE)
    chosen = [p for p in plans if (p.name in args.plans if args.plans else p.admitted)]
    runs = []
    for plan in chosen:
        for index, num_expressions in enumerate(args.expressions):
            cold = args.cold and index == 0
            runs.append(run_cli(checkpoint, frames, plan, num_expressions, work, cold, args.llm_batch_size))
            logger.info("%s", runs[-1])
    report = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
        },
        "checkpoint": str(checkpoint),
        "frame_size": list(FRAME_SIZE),
        "plans": [vars(p) for p in plans],
        "runs": runs,
    }
    print(table(runs))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == _CHILD_FLAG:
        run_as_cli(Path(sys.argv[2]), sys.argv[4:])
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        main()
