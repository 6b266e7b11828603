"""Per-CPU scaling of `glus batch --ray`: N workers of one CPU each against one worker of one CPU.

For each checkpoint shape (`tiny`, the test checkpoint; `glus`, real widths with few LLaMA layers, see
`glus_cli.testing.checkpoint`) it builds the checkpoint and a dataset of synthetic frame folders (equal
lengths, one expression each) in `--work-dir`, then for N = 1, 2: starts a local Ray cluster of exactly N
CPUs (token authentication, the token in a mode-600 file under `--work-dir`), runs `glus batch --ray local
--workers N` in-process into a fresh folder (each worker reserves one CPU, so Ray gives it
``OMP_NUM_THREADS=1``), and shuts the cluster down. It prints, per run: wall seconds, the driver's
stages (``load_model`` until the first worker answered, ``segment`` after that), each worker's model
load and busy seconds, and against N = 1 the speed-up and the parallel efficiency (speed-up / N) of the
wall time (model loads included) and of segmenting alone (the one worker's busy seconds over the busiest
of the N workers' busy seconds: the loads, which run in parallel, left out); and the load average before
and after. It checks that all
runs of a shape wrote the same mask files. Run it alone: `flock /tmp/glus-heavy.lock` (the GLUS shape
takes about 5 GB of RAM per worker).

    flock /tmp/glus-heavy.lock .venv/bin/python benchmarks/bench_ray.py --shapes tiny glus
    .venv/bin/python benchmarks/bench_ray.py --shapes tiny --videos 8 --frames 6
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import ray

from glus_cli.cli.app import main
from glus_cli.distributed.cluster import use_local_token
from glus_cli.testing.checkpoint import build_checkpoint
from glus_cli.testing.videos import write_frame_folder

SIZE = (48, 64)
WORKER_COUNTS = (1, 2)


def build_dataset(work: Path, shape: str, videos: int, frames: int) -> tuple[Path, Path, Path]:
    """The checkpoint folder, the videos folder and the expressions file (built once, reused)."""
    checkpoint = work / f"ckpt-{shape}"
    if not (checkpoint / "glus" / "config.json").exists():
        build_checkpoint(checkpoint, shape=shape)  # type: ignore[arg-type]
    folder = work / f"videos-{videos}x{frames}"
    if not folder.exists():
        for index in range(videos):
            write_frame_folder(folder / f"v{index:02d}", frames, size=SIZE)
    expressions = work / f"expressions-{videos}.json"
    expressions.write_text(json.dumps({f"v{index:02d}": ["the red circle"] for index in range(videos)}))
    return checkpoint / "glus", folder, expressions


def use_token(work: Path) -> None:
    """Token authentication for the benchmark's clusters, the token in a mode-600 file of its own."""
    token = work / "ray_token"
    if not token.exists():
        descriptor = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32))
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    use_local_token()  # RAY_AUTH_MODE=token, read again by the Ray already imported


def run_glus(args: list[str]) -> float:
    """`glus ARGS` in this process; its wall seconds."""
    sys.argv = ["glus", *args]
    started = time.perf_counter()
    try:
        main()
    except SystemExit as done:
        if done.code:
            raise RuntimeError(f"glus exited with {done.code}") from None
    return time.perf_counter() - started


def run_workers(checkpoint: Path, videos: Path, expressions: Path, out: Path, workers: int) -> dict[str, Any]:
    """One `glus batch --ray` run on a fresh local cluster of `workers` CPUs: its summary, plus ``wall``."""
    shutil.rmtree(out, ignore_errors=True)
    ray.init(
        num_cpus=workers, num_gpus=0, include_dashboard=False, log_to_driver=False, logging_level="ERROR"
    )
    try:
        args = ["batch", str(videos), "-e", str(expressions), "-o", str(out), "--model", str(checkpoint)]
        wall = run_glus([*args, "--device", "cpu", "-q", "--ray", "local", "--workers", str(workers)])
    finally:
        ray.shutdown()
    summary = json.loads((out / "summary.json").read_text())
    return {**summary, "wall": wall}


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.png")}


def seconds(workers: list[dict[str, Any]], key: str) -> str:
    """One figure per worker, comma-separated."""
    return ", ".join(f"{worker[key]:.1f}" for worker in workers)


def report(shape: str, runs: dict[int, dict[str, Any]]) -> None:
    """The shape's table: seconds, model loads apart from segmenting, speed-up and efficiency."""
    print(f"\n### {shape} checkpoint")
    print(
        "| workers (1 CPU each) | wall s | load_model s | segment s | model load s per worker | "
        "busy s per worker | wall speed-up, efficiency | segmenting speed-up, efficiency |"
    )
    print("|---:|---:|---:|---:|---|---|---|---|")
    base = runs[1]
    for workers, run in runs.items():
        block = run["ray"]["workers"]
        stages = run["timings_seconds"]
        wall_up = base["wall"] / run["wall"]
        busy_up = sum(w["busy_seconds"] for w in base["ray"]["workers"]) / max(
            w["busy_seconds"] for w in block
        )
        print(
            f"| {workers} | {run['wall']:.1f} | {stages['load_model']:.1f} | {stages['segment']:.1f} | "
            f"{seconds(block, 'load_seconds')} | {seconds(block, 'busy_seconds')} | "
            f"{wall_up:.2f}x, {wall_up / workers:.2f} | {busy_up:.2f}x, {busy_up / workers:.2f} |"
        )


def main_benchmark() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/glus-bench-ray"))
    parser.add_argument("--shapes", nargs="+", choices=("tiny", "glus"), default=["tiny", "glus"])
    parser.add_argument("--videos", type=int, default=4, help="videos, one expression each")
    parser.add_argument("--frames", type=int, default=4, help="frames per video")
    options = parser.parse_args()
    options.work_dir.mkdir(parents=True, exist_ok=True)
    use_token(options.work_dir)
    print(f"{options.videos} videos x {options.frames} frames of {SIZE[1]}x{SIZE[0]}, one expression each")
    for shape in options.shapes:
        checkpoint, videos, expressions = build_dataset(
            options.work_dir, shape, options.videos, options.frames
        )
        load = os.getloadavg()
        runs = {
            workers: run_workers(
                checkpoint, videos, expressions, options.work_dir / f"out-{shape}-{workers}", workers
            )
            for workers in WORKER_COUNTS
        }
        report(shape, runs)
        after = os.getloadavg()
        print(f"load average (1, 5, 15 min) before: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, ", end="")
        print(f"after: {after[0]:.1f} {after[1]:.1f} {after[2]:.1f}")
        outputs = [digests(options.work_dir / f"out-{shape}-{workers}") for workers in WORKER_COUNTS]
        print(f"same mask files in every run: {all(output == outputs[0] for output in outputs)}")


if __name__ == "__main__":
    main_benchmark()
