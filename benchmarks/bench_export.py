"""Benchmark of `glus export` on synthetic `glus batch` folders: time and peak memory against expressions.

A batch folder in the `glus batch` layout is written without a model: `--videos-per-100` videos per 100
expressions (MeViS valid_u has 140 videos and about 2,200 expressions: 16 expressions per video), each with
`--frames` JPEG frames and, per expression, one PNG mask per frame (a disc moving along its own path) and an
``expression.json`` with per-frame SAM2 scores. Each export runs in a fresh process, which reports its
own peak RSS (`VmHWM`; `wait4`'s ru_maxrss would also count this process's), so the figures are the
export's own. The claim to check: peak memory does not
grow with the number of expressions.

    .venv/bin/python benchmarks/bench_export.py                               # 200 and 2,200 expressions
    flock /tmp/glus-heavy.lock .venv/bin/python benchmarks/bench_export.py --expressions 200 2200
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from glus_cli.testing.videos import write_frame_folder

EXPRESSIONS_PER_VIDEO = 16
_EXPORT = """
import sys
from pathlib import Path
from glus_cli.export import ExportOptions, export_run
export_run(Path(sys.argv[1]), Path(sys.argv[2]), ExportOptions(sys.argv[3]))
print(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0])
"""
"""One export in a fresh process; it prints its own peak RSS (VmHWM, kB). Not the `ru_maxrss` of `wait4`:
Linux keeps the larger maxrss across exec, and a child started with vfork would report this process's."""


def write_batch(root: Path, expressions: int, frames: int, size: tuple[int, int]) -> Path:
    """A ``glus batch`` output folder with `expressions` expressions (16 per video) over synthetic frames."""
    frames_root, run = root / "frames", root / "run"
    run.mkdir(parents=True)
    rng = np.random.default_rng(0)
    height, width = size
    videos = (expressions + EXPRESSIONS_PER_VIDEO - 1) // EXPRESSIONS_PER_VIDEO
    written = 0
    for video_index in range(videos):
        video = f"video{video_index:04d}"
        write_frame_folder(frames_root / video, frames, size=size)
        for exp_id in range(min(EXPRESSIONS_PER_VIDEO, expressions - written)):
            folder = run / video / str(exp_id)
            folder.mkdir(parents=True)
            start, step = rng.uniform(0.2, 0.8, 2), rng.uniform(-0.02, 0.02, 2)
            radius = int(rng.uniform(0.05, 0.25) * min(size))
            ious = rng.uniform(0.5, 1.0, frames).round(4).tolist()
            for index in range(frames):
                mask = np.zeros(size, np.uint8)
                y, x = (start + index * step).clip(0, 1) * [height, width]
                cv2.circle(mask, (int(x), int(y)), radius, 255, -1)
                cv2.imwrite(str(folder / f"{index:05d}.png"), mask)
            record = {
                "exp_id": str(exp_id),
                "text": f"object {exp_id % 40}",
                "output_dir": str(folder),
                "keyframe": None,
                "num_frames": frames,
                "frames_without_seg": [],
                "mean_predicted_iou": float(np.mean(ious)),
                "seconds": 0.0,
                "overlay": None,
                "frames": [f"{index:05d}" for index in range(frames)],
                "predicted_iou": ious,
                "object_score": rng.uniform(-1, 5, frames).round(4).tolist(),
            }
            (folder / "expression.json").write_text(json.dumps(record))
            written += 1
    summary = {"command": "batch", "input": str(frames_root), "options": {"stride": 1, "max_frames": None}}
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def timed_export(run: Path, out: Path, fmt: str) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of one export in a fresh process."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _EXPORT, str(run), str(out), fmt], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"export to {fmt} failed: {done.stderr.strip()[-500:]}")
    return seconds, int(done.stdout.split()[-1]) / 1024


def tree_mib(path: Path) -> float:
    """Bytes of the regular files under `path` (links not followed), in MiB."""
    files = (p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return sum(p.stat().st_size for p in files) / 2**20


def main() -> None:
    """Parse the options, write the folders, run the exports, print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expressions", type=int, nargs="+", default=[200, 2200])
    parser.add_argument("--formats", nargs="+", default=["coco", "ytvis", "yolo", "mots"])
    parser.add_argument("--frames", type=int, default=10, help="frames per video")
    parser.add_argument("--size", default="240x320", help="HxW of the frames")
    args = parser.parse_args()
    size = tuple(int(side) for side in args.size.split("x"))
    print("| expressions | videos | masks | format | seconds | peak RSS MiB | output MiB |")
    print("|---:|---:|---:|---|---:|---:|---:|")
    for expressions in args.expressions:
        with tempfile.TemporaryDirectory() as work:
            run = write_batch(Path(work), expressions, args.frames, size)  # type: ignore[arg-type]
            videos = len([p for p in run.iterdir() if p.is_dir()])
            for fmt in args.formats:
                out = Path(work) / f"out-{fmt}"
                seconds, peak = timed_export(run, out, fmt)
                print(
                    f"| {expressions} | {videos} | {expressions * args.frames} | {fmt} | {seconds:.1f} | "
                    f"{peak:.0f} | {tree_mib(out):.1f} |",
                    flush=True,
                )
                shutil.rmtree(out)


if __name__ == "__main__":
    main()
