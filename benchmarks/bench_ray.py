"""Scaling of `glus batch --ray`: the same dataset with 1 and with 2 CPU workers, in one run.

Builds the tiny synthetic checkpoint and a dataset of synthetic frame folders (unequal lengths, one
expression each) in `--work-dir`, starts one local Ray cluster (`--cpus` CPUs, no GPU), then runs the
`glus batch` command in-process with `--ray local --workers 1`, then `--workers 2`, each into a fresh
output folder, and prints per run: wall seconds (cluster already up; model loads included), the driver's
stages, each worker's model load and busy seconds, and the wall-time ratio. It also checks that both runs
wrote the same mask files.

    .venv/bin/python benchmarks/bench_ray.py                     # about 3 minutes on 2 quiet cores
    .venv/bin/python benchmarks/bench_ray.py --videos 8 --frames 4 12
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import ray

from glus_cli.cli.app import main
from glus_cli.testing.checkpoint import build_checkpoint
from glus_cli.testing.videos import write_frame_folder

SIZE = (48, 64)


def build_dataset(work: Path, videos: int, frames: tuple[int, int]) -> tuple[Path, Path, Path]:
    """The checkpoint folder, the videos folder and the expressions file (built once, reused)."""
    checkpoint = work / "ckpt"
    if not (checkpoint / "glus" / "config.json").exists():
        build_checkpoint(checkpoint)
    folder = work / f"videos-{videos}-{frames[0]}-{frames[1]}"
    if not folder.exists():
        step = (frames[1] - frames[0]) / max(1, videos - 1)
        for index in range(videos):
            write_frame_folder(folder / f"v{index:02d}", round(frames[0] + index * step), size=SIZE)
    expressions = work / f"expressions-{videos}.json"
    expressions.write_text(json.dumps({f"v{index:02d}": ["the red circle"] for index in range(videos)}))
    return checkpoint / "glus", folder, expressions


def run_batch(args: list[str]) -> float:
    """`glus ARGS` in this process; its wall seconds."""
    sys.argv = ["glus", *args]
    started = time.perf_counter()
    try:
        main()
    except SystemExit as done:
        if done.code:
            raise RuntimeError(f"glus exited with {done.code}") from None
    return time.perf_counter() - started


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.png")}


def main_benchmark() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/glus-bench-ray"))
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--frames", type=int, nargs=2, default=(3, 8), help="shortest and longest video")
    parser.add_argument("--cpus", type=int, default=2)
    options = parser.parse_args()
    options.work_dir.mkdir(parents=True, exist_ok=True)
    checkpoint, videos, expressions = build_dataset(options.work_dir, options.videos, tuple(options.frames))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(
        num_cpus=options.cpus, num_gpus=0, include_dashboard=False, log_to_driver=False, logging_level="ERROR"
    )
    load = os.getloadavg()[0]
    walls, summaries = {}, {}
    try:
        for workers in (1, 2):
            out = options.work_dir / f"out-{workers}"
            shutil.rmtree(out, ignore_errors=True)
            args = ["batch", str(videos), "-e", str(expressions), "-o", str(out), "--model", str(checkpoint)]
            walls[workers] = run_batch(
                [*args, "--device", "cpu", "-q", "--ray", "local", "--workers", str(workers)]
            )
            summaries[workers] = json.loads((out / "summary.json").read_text())
    finally:
        ray.shutdown()
    frames = sum(outcome["num_frames"] for outcome in summaries[1]["outcomes"])
    print(
        f"{options.videos} videos, {frames} query frames, tiny checkpoint, {options.cpus}-CPU local cluster"
    )
    print(f"load average before: {load:.1f}, after: {os.getloadavg()[0]:.1f}")
    print("| workers | wall s | driver stages s | model load s per worker | busy s per worker |")
    print("|---:|---:|---|---|---|")
    for workers, summary in summaries.items():
        block = summary["ray"]["workers"]
        print(
            f"| {workers} | {walls[workers]:.1f} | {summary['timings_seconds']} | "
            f"{[w['load_seconds'] for w in block]} | {[w['busy_seconds'] for w in block]} |"
        )
    print(f"wall ratio 1 worker / 2 workers: {walls[1] / walls[2]:.2f}x")
    same = digests(options.work_dir / "out-1") == digests(options.work_dir / "out-2")
    print(f"same mask files: {same}")


if __name__ == "__main__":
    main_benchmark()
